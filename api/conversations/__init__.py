"""Conversations on a channel and the messages in them."""
