"""Brazilian identifiers found in negotiation messages: documents, phones, money, references."""
