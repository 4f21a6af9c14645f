"""Payment payloads built and checked locally: Pix BR Code (copia e cola) and boleto."""
