"""The demo tenant, client and a realistic multi-country portfolio."""
