"""The `tratativa` command line: one entry point for every operator task."""
