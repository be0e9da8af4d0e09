"""A plugin whose hooks fail in every other way; its one sound compliance pack must load.

``register_channels`` registers objects that are not usable providers, then one that is
fine but named like another plugin's; ``register_payment_providers`` registers one provider
and then raises (so nothing of it may be kept); ``register_erp_connectors`` is async.
"""

from __future__ import annotations

from typing import Any

import msgspec
from cartera_sdk import BaseCompliancePack, Holiday, RuleDescription, hookimpl
from cartera_sdk.compliance import Allow, ContactVerdict, PlannedContact, Reason


class _NameRaises:
    @property
    def name(self) -> str:
        raise RuntimeError("name lookup explodes")


class _NoMethods:
    name = "faulty_no_methods"
    channel = "sms"


class _BadConfig:
    name = "faulty_bad_config"
    channel = "sms"
    Config = dict
    Secrets = msgspec.Struct

    async def send(self, message: Any, ctx: Any) -> Any: ...
    async def verify_webhook(self, request: Any, ctx: Any) -> None: ...
    def parse_webhook(self, request: Any, ctx: Any) -> list[Any]: return []
    async def handshake(self, request: Any, ctx: Any) -> Any: return None
    async def test_connection(self, ctx: Any) -> Any: ...


class FaultyPack(BaseCompliancePack):
    name = "faulty_pack"
    country = "UY"

    def judge(self, contact: PlannedContact, config: Any) -> ContactVerdict:
        return Allow(reasons=[Reason(code="ok", message="always")])

    def calendar(self, year: int, subdivision: str | None = None) -> list[Holiday]:
        return []

    def rules(self) -> list[RuleDescription]:
        return [RuleDescription(code="ok", title="OK", description="Always allowed.")]


@hookimpl
def register_channels(register: Any) -> None:
    register(_NameRaises())
    register(_NoMethods())
    register(_BadConfig())


@hookimpl
def register_payment_providers(register: Any) -> None:
    register(_NoMethods())
    raise RuntimeError("payment setup failed half-way")


@hookimpl
async def register_erp_connectors(register: Any) -> None:
    register(_NoMethods())


@hookimpl
def register_compliance_packs(register: Any) -> None:
    register(FaultyPack())
