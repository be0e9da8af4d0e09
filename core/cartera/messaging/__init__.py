"""Messaging: templates, the interaction log, the contact gate and sending through plugins."""
