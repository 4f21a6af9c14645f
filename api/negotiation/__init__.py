"""Negotiation strictly within a brand's settlement policy."""
