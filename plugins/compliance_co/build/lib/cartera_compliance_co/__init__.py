"""Cartera compliance pack for Colombia. Imports only ``cartera_sdk``."""

from __future__ import annotations

from cartera_sdk import RegisterCompliancePack, hookimpl

from .pack import CoConfig, ColombiaPack

__all__ = ["CoConfig", "ColombiaPack", "register_compliance_packs"]


@hookimpl
def register_compliance_packs(register: RegisterCompliancePack) -> None:
    register(ColombiaPack())
