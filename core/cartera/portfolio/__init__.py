"""The portfolio domain: portfolios, debtors, their contact points, obligations, balances."""
