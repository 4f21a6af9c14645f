"""Tratativa: conversational CRM for brand-protection negotiations."""
