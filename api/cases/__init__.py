"""Cases, their lifecycle and their listings."""
