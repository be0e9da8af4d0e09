"""Bulk ingestion of debtors, obligations and payments from NDJSON or CSV."""
