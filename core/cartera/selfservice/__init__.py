"""Debtor-facing self-service behind revocable, short-lived access links."""
