"""Talking to Rasa: the gateway client and the action server Rasa calls back."""
