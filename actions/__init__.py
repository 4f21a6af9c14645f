"""Rasa custom actions, served by the Tratativa service at /actions/webhook."""
