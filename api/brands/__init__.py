"""Client brands and their settlement policies."""
