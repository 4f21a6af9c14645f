"""Test helpers in the style of Zulip's: capture the events a call emitted, count queries."""
