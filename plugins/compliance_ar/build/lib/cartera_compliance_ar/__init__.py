"""Cartera compliance pack for Argentina. Imports only ``cartera_sdk``."""

from __future__ import annotations

from cartera_sdk import RegisterCompliancePack, hookimpl

from .pack import ArConfig, ArgentinaPack

__all__ = ["ArConfig", "ArgentinaPack", "register_compliance_packs"]


@hookimpl
def register_compliance_packs(register: RegisterCompliancePack) -> None:
    register(ArgentinaPack())
