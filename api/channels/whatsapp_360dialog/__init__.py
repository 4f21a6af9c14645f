"""WhatsApp through 360dialog (a Meta partner): Cloud API payloads, the D360-API-KEY header."""
