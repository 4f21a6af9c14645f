"""WhatsApp through Meta's Cloud API directly: X-Hub-Signature-256 webhooks, Graph API sends."""
