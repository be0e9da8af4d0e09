"""Offers: early-payment discounts, settlements (quitas) and installment proposals."""
