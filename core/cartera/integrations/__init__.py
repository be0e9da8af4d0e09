"""A tenant's integrations: configured instances of plugin providers, and their webhooks."""
