"""Channel adapters: each turns a provider payload into an InboundMessage and sends Envelopes."""
