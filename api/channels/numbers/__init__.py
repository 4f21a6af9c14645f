"""WhatsApp sending numbers and their providers."""
