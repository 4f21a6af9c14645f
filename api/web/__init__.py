"""HTTP plumbing shared by the routes: sessions, authentication, error rendering."""
