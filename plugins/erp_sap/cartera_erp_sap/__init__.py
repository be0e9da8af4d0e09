"""Cartera ERP plugin for SAP: Business One Service Layer and S/4HANA.

Registers two ERP connectors: ``sap_b1`` (Business One Service Layer: customers, open
invoices and credit notes, incoming payments posted back) and ``sap_s4hana`` (S/4HANA
OData v2, read-only: business partners, open customer items, clearings read back as
payments). It imports only ``cartera_sdk`` (plus ``msgspec`` and ``httpx``), as every
Cartera plugin must.
"""

from __future__ import annotations

from cartera_sdk import RegisterErpConnector, hookimpl

from .b1 import B1Config, B1Secrets, BusinessOneConnector
from .s4 import S4Config, S4HanaConnector, S4Secrets

__all__ = [
    "B1Config",
    "B1Secrets",
    "BusinessOneConnector",
    "S4Config",
    "S4HanaConnector",
    "S4Secrets",
    "register_erp_connectors",
]

__version__ = "0.1.0"


@hookimpl
def register_erp_connectors(register: RegisterErpConnector) -> None:
    """Register the Business One and S/4HANA connectors."""
    register(BusinessOneConnector())
    register(S4HanaConnector())
