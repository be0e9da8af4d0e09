"""Cartera: a headless collections-management API (gestión de cobranzas)."""

__version__ = "0.1.0"
