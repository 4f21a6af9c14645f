"""Live events for analysts' browsers, published only after the transaction commits."""
