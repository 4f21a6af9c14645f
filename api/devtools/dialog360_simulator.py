"""A local 360dialog-compatible WhatsApp server (api.devtools.whatsapp_provider_sim).

Run: `python -m api.devtools.dialog360_simulator --port … --webhook-base http://127.0.0.1:8000`.
"""

from api.devtools.whatsapp_provider_sim import main

if __name__ == "__main__":
    main("360dialog")
