"""Metrics and reports computed from the event stream."""
