"""Follow-ups on conversations: when to look again, and what went unanswered."""
