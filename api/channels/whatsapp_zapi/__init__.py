"""WhatsApp through Z-API (unofficial: drives a WhatsApp Web session; risk of ban, no templates)."""
