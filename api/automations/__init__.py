"""Automations: rules (trigger, conditions, actions) and their execution ledger."""
