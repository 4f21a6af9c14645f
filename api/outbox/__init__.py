"""Durable delivery of every outbound message."""
