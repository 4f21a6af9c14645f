"""Meta's WhatsApp Cloud API wire format, shared by Meta itself and 360dialog."""
