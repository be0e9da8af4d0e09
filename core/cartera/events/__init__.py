"""Outbound events for ISVs: the outbox, ``/v1/events``, webhook endpoints, signed delivery.

Not to be confused with :mod:`cartera.integrations.webhooks` (inbound provider webhooks) or
:mod:`cartera.plugins.events` (in-process plugin hooks).
"""
