"""ERP sync: pulling debtors and open items from an ERP connector, posting payments back."""
