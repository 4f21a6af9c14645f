"""Passing a conversation from the bot to a person."""
