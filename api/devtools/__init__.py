"""Development tools that stand in for external services (a local Twilio-compatible server)."""
