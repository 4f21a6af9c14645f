"""Analysts, supervisors and admins who use the panel and the API."""
