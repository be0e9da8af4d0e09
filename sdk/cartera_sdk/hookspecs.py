"""Cartera hook specifications: every hook a plugin may implement, and nothing else.

Plugins implement hooks with ``@cartera_sdk.hookimpl`` and are discovered through the
``cartera`` entry-point group. An implementation may accept any subset of a hook's
arguments (pluggy prunes the rest), so new arguments can be added without breaking
existing plugins.

* Registration hooks (``register_*``) are synchronous: they call ``register(obj)`` once per
  object they contribute. The objects' I/O methods are ``async``; the host awaits them.
* Observer hooks (``on_*``) receive one immutable event from :mod:`cartera_sdk.events`.
  They may be ``def`` or ``async def`` (the host runs :func:`cartera_sdk.await_me_maybe` on
  each result), run with a timeout and error capture, and their return value is ignored.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .events import (
        DebtorStageChanged,
        InteractionRecorded,
        PaymentReceived,
        PromiseBroken,
        SegmentChanged,
    )
    from .registry import (
        RegisterChannel,
        RegisterCompliancePack,
        RegisterErpConnector,
        RegisterPaymentProvider,
    )

__all__ = [
    "hookspec",
    "on_debtor_stage_changed",
    "on_interaction_recorded",
    "on_payment_received",
    "on_promise_broken",
    "on_segment_changed",
    "register_channels",
    "register_compliance_packs",
    "register_erp_connectors",
    "register_payment_providers",
]

hookspec = pluggy.HookspecMarker("cartera")

# --------------------------------------------------------------------- registration hooks


@hookspec
def register_channels(register: RegisterChannel) -> None:
    """Register channel providers: call ``register(provider)`` for each
    :class:`~cartera_sdk.channels.ChannelProvider` instance.

    :param register: callback; the host rejects a second provider with the same ``name``.

    .. versionadded:: 0.1
    """


@hookspec
def register_payment_providers(register: RegisterPaymentProvider) -> None:
    """Register payment providers: call ``register(provider)`` for each
    :class:`~cartera_sdk.payments.PaymentProvider` instance.

    :param register: callback; names must be unique across plugins.

    .. versionadded:: 0.1
    """


@hookspec
def register_erp_connectors(register: RegisterErpConnector) -> None:
    """Register ERP connectors: call ``register(connector)`` for each
    :class:`~cartera_sdk.erp.ErpConnector` instance.

    :param register: callback; names must be unique across plugins.

    .. versionadded:: 0.1
    """


@hookspec
def register_compliance_packs(register: RegisterCompliancePack) -> None:
    """Register country compliance packs: call ``register(pack)`` for each
    :class:`~cartera_sdk.compliance.CompliancePack`.

    :param register: callback; at most one pack per ``country`` is active per tenant.

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------- observer hooks


@hookspec
def on_payment_received(event: PaymentReceived) -> Awaitable[None] | None:
    """Called after a payment is committed.

    :param event: :class:`~cartera_sdk.events.PaymentReceived`.

    .. versionadded:: 0.1
    """


@hookspec
def on_promise_broken(event: PromiseBroken) -> Awaitable[None] | None:
    """Called when a promise to pay passes its due date unkept.

    :param event: :class:`~cartera_sdk.events.PromiseBroken`.

    .. versionadded:: 0.1
    """


@hookspec
def on_segment_changed(event: SegmentChanged) -> Awaitable[None] | None:
    """Called when an evaluation moves a debtor between segments: a segmentation run, or
    the debtor's own re-evaluation after a change to them or their money. Once per moved
    debtor, after the change commits, at least once (``event_id`` is stable across
    redeliveries).

    :param event: :class:`~cartera_sdk.events.SegmentChanged`.

    .. versionadded:: 0.1
    """


@hookspec
def on_interaction_recorded(event: InteractionRecorded) -> Awaitable[None] | None:
    """Called after a contact attempt or a debtor reply is logged.

    :param event: :class:`~cartera_sdk.events.InteractionRecorded`.

    .. versionadded:: 0.1
    """


@hookspec
def on_debtor_stage_changed(event: DebtorStageChanged) -> Awaitable[None] | None:
    """Called when a debtor's collection stage changes: by days past due at an evaluation,
    or set or released by hand. Once per change, after it commits, at least once
    (``event_id`` is stable across redeliveries).

    :param event: :class:`~cartera_sdk.events.DebtorStageChanged`.

    .. versionadded:: 0.1
    """
