"""Cartera compliance pack for Brazil. Imports only ``cartera_sdk``."""

from __future__ import annotations

from cartera_sdk import RegisterCompliancePack, hookimpl

from .pack import BrazilPack, BrConfig

__all__ = ["BrConfig", "BrazilPack", "register_compliance_packs"]


@hookimpl
def register_compliance_packs(register: RegisterCompliancePack) -> None:
    register(BrazilPack())
