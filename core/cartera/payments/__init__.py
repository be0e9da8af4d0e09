"""Payments and their allocation to obligations."""
