"""The append-only case timeline."""
