"""WhatsApp through UltraMsg (unofficial: drives a WhatsApp Web session; risk of ban, no templates)."""
