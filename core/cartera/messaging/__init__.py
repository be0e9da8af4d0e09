"""Messaging: templates, the interaction log, the contact gate and sending through plugins.

Delivery guarantee (see :mod:`cartera.messaging.batch` for the mechanism). Each message is
claimed (``sending``, with a lease) before its provider call and its outcome recorded right
after, so a worker crash can only repeat the messages whose call was in flight, or whose
outcome was not yet committed, at the moment it died: those are sent again once the lease
expires (at least once; never lost). A provider-side timeout is retried the same way.
Every call carries ``OutboundMessage.message_id`` (``int_<interaction id>``) and
``idempotency_key`` (``cartera-interaction-<interaction id>``), both stable across
attempts. What such a repeat means, per provider plugin:

* **WhatsApp Cloud API**: no send idempotency. ``message_id`` travels in
  ``biz_opaque_callback_data`` and comes back on every status webhook, so a duplicate is
  recognisable afterwards, not prevented: at least once.
* **Twilio SMS**: no send idempotency and no correlation field on the send but the
  ``StatusCallback`` URL, which carries ``cartera_message_id``: at least once.
* **Infobip SMS**: no idempotency header; ``message_id`` is the ``messageId`` we choose
  (also in ``callbackData``), queryable later in Infobip's logs: at least once, a duplicate
  shares our ``messageId``.
* **SendGrid**: no idempotency; ``custom_args.cartera_message_id`` on every event and the
  ``X-Message-Id`` answer: at least once.
* **SMTP**: a deterministic ``Message-ID`` header derived from ``message_id``: at least once
  at the relay, and receiving mail systems that de-duplicate on ``Message-ID`` show one.
* A provider that honours an ``Idempotency-Key`` header (the ``fixture_sms`` test plugin
  sends ``idempotency_key`` there) delivers exactly once.

Frequency caps count contacts made (``sending`` onwards, or attempted), never the message
being judged, and the gate runs under a per-debtor lock at send time (PostgreSQL: a
transaction-scoped advisory lock, see :func:`cartera.messaging.batch.lock_debtors`).
"""
