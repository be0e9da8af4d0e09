"""Cartera compliance pack for Peru. Imports only ``cartera_sdk``."""

from __future__ import annotations

from cartera_sdk import RegisterCompliancePack, hookimpl

from .pack import PeConfig, PeruPack

__all__ = ["PeConfig", "PeruPack", "register_compliance_packs"]


@hookimpl
def register_compliance_packs(register: RegisterCompliancePack) -> None:
    register(PeruPack())
