"""Negotiation: promises to pay and installment plans (arrangements)."""
