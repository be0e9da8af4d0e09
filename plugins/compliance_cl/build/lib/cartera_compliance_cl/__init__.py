"""Cartera compliance pack for Chile. Imports only ``cartera_sdk``."""

from __future__ import annotations

from cartera_sdk import RegisterCompliancePack, hookimpl

from .pack import ChilePack, ClConfig

__all__ = ["ChilePack", "ClConfig", "register_compliance_packs"]


@hookimpl
def register_compliance_packs(register: RegisterCompliancePack) -> None:
    register(ChilePack())
