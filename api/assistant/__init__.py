"""What the bot's custom actions do, as plain async services (no Rasa types here)."""
