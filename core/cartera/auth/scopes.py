"""OAuth2 scopes: one read and one write scope per resource family."""

from __future__ import annotations

SCOPES: dict[str, str] = {
    "portfolio:read": "Read portfolios, debtors, obligations, payments and balances",
    "portfolio:write": "Create and change portfolios, debtors, obligations and payments",
    "imports:read": "Read bulk imports and their row errors",
    "imports:write": "Start bulk imports",
    "reports:read": "Read reports such as the aging report",
    "jobs:read": "Follow background jobs",
    "segments:read": "Read segment rules, runs, explanations and previews",
    "segments:write": "Change segment rules and start segmentation runs",
    "audit:read": "Read the audit trail",
    "plugins:read": "List installed plugins, their providers and config schemas",
    "integrations:read": "Read the tenant's integrations (never their secrets)",
    "integrations:write": "Create, change, disable and test integrations",
    "messaging:read": "Read templates, interactions and opt-out keywords",
    "messaging:write": "Manage templates, send messages, record interactions",
    "negotiation:read": "Read promises to pay and installment plans",
    "negotiation:write": "Record and cancel promises to pay and installment plans",
    "compliance:read": "List compliance packs and their rules, check contacts, read the report",
    "compliance:write": "Change the tenant's compliance settings",
    "clients:read": "List the tenant's OAuth clients (never their secrets)",
    "clients:write": "Create, disable, rotate and delete the tenant's OAuth clients",
    "offers:read": "Read offers and the offer policy",
    "offers:write": "Make, approve, accept and cancel offers (limits per role)",
    "offers:admin": "Change the tenant's offer policy",
    "role:collector": "Offer role: the collector's discount limits of the offer policy",
    "role:supervisor": "Offer role: the supervisor's discount limits of the offer policy",
    "role:manager": "Offer role: the manager's discount limits of the offer policy",
    "self-service:read": "List debtors' self-service links (never their tokens)",
    "self-service:write": "Issue and revoke debtors' self-service links",
    "platform:admin": "Platform operators: manage tenants (granted only by the CLI)",
    "strategies:read": "Read strategies, enrollments, planned actions and explanations",
    "strategies:write": "Manage strategies and their versions, run the planner, pause, "
                        "resume and stop enrollments",
    "tasks:read": "Read collector tasks",
    "tasks:write": "Complete and cancel collector tasks",
    "events:read": "Read the events of the last 30 days",
    "webhook-endpoints:read": "Read webhook endpoints and their delivery logs",
    "webhook-endpoints:write": "Manage webhook endpoints, rotate their secrets, redeliver events",
}
PLATFORM_SCOPES = frozenset({"platform:admin"})
"""Scopes only ``cartera clients create --platform`` grants: never via the API, never by
default."""
DEFAULT_CLIENT_SCOPES = tuple(s for s in SCOPES if s not in PLATFORM_SCOPES)
"""What ``cartera clients create`` grants without ``--scopes``: every tenant scope."""


def read_only(scopes: frozenset[str] | set[str] | list[str] | tuple[str, ...]) -> list[str]:
    """The ``*:read`` scopes among ``scopes``, in catalogue order: what an API-created
    client gets when no scopes are asked for."""
    return [s for s in SCOPES if s.endswith(":read") and s in scopes]


def parse(scope: str | None) -> list[str]:
    return [s for s in (scope or "").split() if s]


def unknown(scopes: list[str]) -> list[str]:
    return [s for s in scopes if s not in SCOPES]
