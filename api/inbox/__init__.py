"""The analysts' inbox of inbound messages no case claimed yet (the unmatched queue)."""
