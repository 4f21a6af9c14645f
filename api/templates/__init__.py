"""Message templates with variables, rendered strictly (a missing variable is an error)."""
