"""The e-mail channel: IMAP ingestion, parsing, classification, case matching, composing and
SMTP delivery of replies, the unmatched queue and follow-ups."""
