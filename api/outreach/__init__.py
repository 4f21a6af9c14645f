"""Outreach: the extrajudicial notice and bulk sends."""
