"""Tenants: each creditor using Cartera, with its country, currency and time zone."""
