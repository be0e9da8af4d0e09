"""The money lock, kept under its first name: it lives in :mod:`cartera.portfolio.locks`
(obligations are money too, and the portfolio takes it before writing them; the domains
below payments must not import payments)."""

from cartera.portfolio.locks import (
    MONEY_LOCK_SPACE,
    lock_debtor_rows,
    lock_debtors,
    lock_tenant_money,
)

__all__ = ["MONEY_LOCK_SPACE", "lock_debtor_rows", "lock_debtors", "lock_tenant_money"]
