"""Cartera compliance pack for Mexico. Imports only ``cartera_sdk``."""

from __future__ import annotations

from cartera_sdk import RegisterCompliancePack, hookimpl

from .pack import MexicoPack, MxConfig

__all__ = ["MexicoPack", "MxConfig", "register_compliance_packs"]


@hookimpl
def register_compliance_packs(register: RegisterCompliancePack) -> None:
    register(MexicoPack())
