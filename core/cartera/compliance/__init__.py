"""Compliance on the host side: the tenant's pack configs and settings, the contact facts
the gate feeds the packs, and the /v1/compliance API."""
