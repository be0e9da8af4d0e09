"""What the gate feeds the country packs, and with which tenant configuration.

* :class:`GatePolicy`: per tenant, each pack's config (from the tenant's enabled
  integration of that pack, else the pack's lawful default ``Config()``), the policy for
  countries with no pack, and the creditor identity content is checked against.
* :class:`ContactFacts`: per debtor, the stage, litigation flag, whether this would be the
  first contact, and the channels the debtor authorised.
* :func:`contact_content`: the rendered content of a message as the packs read it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
from cartera_sdk.compliance import ContactContent, Creditor
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.compliance.models import ComplianceSettings
from cartera.integrations.models import Integration
from cartera.messaging.models import Interaction
from cartera.plugins.host import PluginHost
from cartera.portfolio.models import ContactPoint, Debtor
from cartera.segmentation.models import Placement, Stage

log = logging.getLogger("cartera.compliance")

#: Interaction statuses of a contact actually made (sent or attempted).
MADE_STATUSES = ("sent", "delivered", "read", "completed", "no_answer")
#: Which channels a contact point of a kind can carry (mirrors the gate's table).
KIND_CHANNELS: dict[str, tuple[str, ...]] = {
    "phone": ("sms", "whatsapp", "voice"), "whatsapp": ("whatsapp",), "email": ("email",),
    "address": ("letter", "visit"),
}
INVALID_CONFIG = object()  # marks a stored config the installed pack no longer accepts
_TAGS = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class GatePolicy:
    """How one tenant's contacts are judged. ``configs`` maps a pack name to its config
    (:data:`INVALID_CONFIG` when the stored one no longer validates: the gate denies)."""

    configs: dict[str, Any] = field(default_factory=dict)
    unknown_country: str = "allow"
    creditor: Creditor | None = None

    def config_for(self, pack: Any) -> Any:
        return self.configs.get(pack.name) or pack.Config()


@dataclass(frozen=True)
class ContactFacts:
    stage: str | None = None
    in_litigation: bool = False
    is_first_contact: bool = False
    authorized_channels: list[str] | None = None


def _pack_config(pack: Any, raw: dict[str, Any]) -> Any:
    try:
        return msgspec.convert(dict(raw), pack.Config)
    except msgspec.ValidationError as exc:
        log.error("stored compliance config rejected", extra={"pack": pack.name,
                                                                 "error": str(exc)})
        return INVALID_CONFIG


async def settings_row(session: AsyncSession, tenant_id: int) -> ComplianceSettings | None:
    return await session.scalar(select(ComplianceSettings).where(
        ComplianceSettings.tenant_id == tenant_id))


def creditor_of(row: ComplianceSettings | None) -> Creditor | None:
    if row is None or not row.creditor_name:
        return None
    return Creditor(name=row.creditor_name, tax_id=row.creditor_tax_id,
                    address=row.creditor_address, agency_name=row.agency_name)


async def load_policy(session: AsyncSession, host: PluginHost, tenant_id: int) -> GatePolicy:
    """The tenant's pack configs (its enabled compliance integrations) and settings."""
    packs = {r.name: r.provider for r in host.providers["compliance"].values()}
    configs: dict[str, Any] = {}
    if packs:
        rows = await session.scalars(select(Integration).where(
            Integration.tenant_id == tenant_id, Integration.provider_kind == "compliance",
            Integration.enabled.is_(True), Integration.provider_name.in_(list(packs)))
            .order_by(Integration.id))
        for integration in rows:
            configs.setdefault(integration.provider_name,
                               _pack_config(packs[integration.provider_name],
                                            integration.config))
    row = await settings_row(session, tenant_id)
    return GatePolicy(configs=configs,
                      unknown_country=row.unknown_country if row else "allow",
                      creditor=creditor_of(row))


def authorised_channels(debtor: Debtor, points: list[ContactPoint]) -> list[str] | None:
    """``attributes.authorized_channels`` when the debtor's record says so, else the
    channels of the contact points with granted consent (minus opt-outs); ``None`` when
    nothing is known."""
    declared = (debtor.attributes or {}).get("authorized_channels")
    if isinstance(declared, list):
        return [str(c) for c in declared]
    granted = sorted({ch for cp in points if cp.consent == "granted"
                      for ch in KIND_CHANNELS.get(cp.kind, ())
                      if ch not in (cp.opted_out_channels or [])})
    return granted or None


async def contact_facts(session: AsyncSession, debtor: Debtor) -> ContactFacts:
    """Stage (the placement's stage code), litigation (``attributes.in_litigation``), first
    contact (no outbound contact ever made) and authorised channels of ``debtor``."""
    return (await contact_facts_many(session, [debtor]))[debtor.id]


async def contact_facts_many(session: AsyncSession, debtors: list[Debtor],
                             exclude: list[int] | None = None) -> dict[int, ContactFacts]:
    """:func:`contact_facts` for many debtors with three queries (stages, whether any
    contact was ever made, contact points), for the batch sender. ``exclude``: interactions
    not to count as contacts made (the ones being judged)."""
    ids = [d.id for d in debtors]
    if not ids:
        return {}
    stages = dict((await session.execute(select(Placement.debtor_id, Stage.code).join(
        Stage, Placement.stage_id == Stage.id).where(Placement.debtor_id.in_(ids)))).all())
    made_query = select(Interaction.debtor_id).where(
        Interaction.debtor_id.in_(ids), Interaction.direction == "outbound",
        Interaction.status.in_(MADE_STATUSES)).distinct()
    if exclude:
        made_query = made_query.where(Interaction.id.not_in(exclude))
    made = set((await session.scalars(made_query)).all())
    points: dict[int, list[ContactPoint]] = {}
    for cp in await session.scalars(select(ContactPoint).where(
            ContactPoint.debtor_id.in_(ids))):
        points.setdefault(cp.debtor_id, []).append(cp)
    return {d.id: ContactFacts(
        stage=stages.get(d.id), in_litigation=(d.attributes or {}).get("in_litigation") is True,
        is_first_contact=d.id not in made,
        authorized_channels=authorised_channels(d, points.get(d.id, [])))
        for d in debtors}


def contact_content(content: Any, fallback_text: str | None = None) -> ContactContent | None:
    """A rendered message (a channel ``Content`` struct or its JSON form) as the packs read
    it. Letters are formal letters; other messages are read as notices (the conservative
    kind: agency notices must name the creditor). A WhatsApp template's approved text lives
    with the provider: its parameters and ``fallback_text`` (the template body) are read."""
    data = content if isinstance(content, dict) else msgspec.to_builtins(content)
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    subject = data.get("subject")
    if kind == "whatsapp_template":
        values = [str(p.get("text") or p.get("value") or "")
                  for p in [*data.get("header_parameters", []), *data.get("body_parameters", [])]
                  if isinstance(p, dict)]
        text = " ".join([fallback_text or "", *values])
    else:
        text = (data.get("text") or data.get("script")
                or _TAGS.sub(" ", str(data.get("html") or "")))
    if not (text or "").strip() and not subject:
        return None
    return ContactContent(text=str(text), subject=subject,
                          kind="formal_letter" if kind == "letter" else "notice")
