"""Every module that registers job handlers or periodic tasks, so any process (the API or
``cartera worker``) can run every kind. Add a module here when it gains an ``@job`` or an
``@every_minute``."""

from __future__ import annotations

import importlib

HANDLER_MODULES = (
    "cartera.api.idempotency",
    "cartera.compliance.jobs",
    "cartera.erpsync.jobs",
    "cartera.events.jobs",
    "cartera.imports.jobs",
    "cartera.integrations.webhooks",
    "cartera.messaging.batch",
    "cartera.messaging.inbound",
    "cartera.messaging.sending",
    "cartera.negotiation.jobs",
    "cartera.offers.jobs",
    "cartera.payments.jobs",
    "cartera.plugins.events",
    "cartera.portfolio.documents",
    "cartera.segmentation.events",
    "cartera.segmentation.jobs",
    "cartera.segmentation.schedule",
    "cartera.strategies.dispatch",
    "cartera.strategies.feedback",
    "cartera.strategies.jobs",
    "cartera.strategies.paylinks",
    "cartera.strategies.simulate",
)


def load_all() -> None:
    for module in HANDLER_MODULES:
        importlib.import_module(module)
