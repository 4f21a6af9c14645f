"""Mailbox connectors (IMAP, Gmail API, Microsoft Graph) behind one table."""
