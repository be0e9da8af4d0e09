"""Imports every table module so ``Base.metadata`` is complete (Alembic, tests)."""

from cartera.api.models import IdempotencyRecord
from cartera.audit.models import AuditEntry
from cartera.auth.models import OAuthClient, RevokedToken, SigningKey, UsedAssertion
from cartera.compliance.models import ComplianceSettings
from cartera.db.base import Base
from cartera.events.models import DeliveryAttempt, EventDelivery, OutboxEvent, WebhookEndpoint
from cartera.imports.models import ImportRowError, ImportRun
from cartera.integrations.models import (
    Integration,
    WebhookDelivery,
    WebhookEvent,
    WebhookRejection,
)
from cartera.jobs.models import Job
from cartera.messaging.models import Interaction, InteractionEvent, MessageTemplate, OptOutKeyword
from cartera.negotiation.models import Arrangement, Installment, Promise
from cartera.offers.models import Offer, OfferPolicy
from cartera.payments.models import (
    Allocation,
    Payment,
    PaymentLink,
    ReconciliationException,
)
from cartera.portfolio.models import (
    ContactPoint,
    Debtor,
    DebtorBalance,
    DebtorTag,
    Obligation,
    Portfolio,
    RelatedParty,
)
from cartera.segmentation.models import (
    Placement,
    PlacementMove,
    Segment,
    SegmentRun,
    Stage,
)
from cartera.selfservice.models import SelfServiceLink
from cartera.strategies.models import (
    Action,
    Enrollment,
    PlannerSettings,
    Strategy,
    StrategyVersion,
)
from cartera.tenants.models import Tenant

__all__ = [
    "Action",
    "Allocation",
    "Arrangement",
    "AuditEntry",
    "Base",
    "ComplianceSettings",
    "ContactPoint",
    "Debtor",
    "DebtorBalance",
    "DebtorTag",
    "DeliveryAttempt",
    "Enrollment",
    "EventDelivery",
    "IdempotencyRecord",
    "ImportRowError",
    "ImportRun",
    "Installment",
    "Integration",
    "Interaction",
    "InteractionEvent",
    "Job",
    "MessageTemplate",
    "OAuthClient",
    "Obligation",
    "Offer",
    "OfferPolicy",
    "OptOutKeyword",
    "OutboxEvent",
    "Payment",
    "PaymentLink",
    "Placement",
    "PlacementMove",
    "PlannerSettings",
    "Portfolio",
    "Promise",
    "ReconciliationException",
    "RelatedParty",
    "RevokedToken",
    "Segment",
    "SegmentRun",
    "SelfServiceLink",
    "SigningKey",
    "Stage",
    "Strategy",
    "StrategyVersion",
    "Tenant",
    "UsedAssertion",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebhookRejection",
]
