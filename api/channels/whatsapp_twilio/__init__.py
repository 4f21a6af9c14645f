"""WhatsApp through Twilio: signed webhooks in (`routes`), messages out (`sender`)."""
