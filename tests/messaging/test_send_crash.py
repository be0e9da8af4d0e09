"""A worker killed (SIGKILL) in the middle of a batch, then restarted: every message reaches
the provider, none twice, counted by the fake provider itself (PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, RecordedRequest
from sqlalchemy import func, select

from cartera.db.engine import make_engine, make_sessionmaker
from cartera.messaging.models import Interaction, InteractionEvent
from cartera.settings import get_settings
from tests.conftest import TEST_EGRESS_ALLOW, TenantClient
from tests.messaging.test_batch import _debtors, _send, _setup

pytestmark = pytest.mark.skipif(
    not os.environ.get("CARTERA_TEST_DATABASE_URL", "").startswith(("postgres", "postgresql")),
    reason="needs CARTERA_TEST_DATABASE_URL on PostgreSQL")

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 120


class IdempotentProvider:
    """The fixture SMS API, slow, deduplicating on the ``Idempotency-Key`` header as a
    provider that offers one does (a repeated key gets the first answer again and is not
    delivered again). The ``hold_at``-th request is accepted, then its answer held until
    :attr:`release` is set: the worker is killed while that call is in flight."""

    def __init__(self, server: FakeHTTPServer, delay: float, hold_at: int) -> None:
        self.delay, self.hold_at = delay, hold_at
        self.delivered: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.holding, self.release = threading.Event(), threading.Event()
        self._ids: dict[str, str] = {}
        self._lock = threading.Lock()
        server.route("POST", "/messages", self.messages)

    def messages(self, req: RecordedRequest) -> FakeResponse:
        time.sleep(self.delay)
        key = req.headers["idempotency-key"]
        with self._lock:
            self.requests[key] += 1
            if key not in self._ids:
                self._ids[key] = f"p-{len(self._ids) + 1}"
                self.delivered[key] += 1
            answer = FakeResponse(201, {"id": self._ids[key]})
            hold = sum(self.requests.values()) == self.hold_at
        if hold:
            self.holding.set()
            self.release.wait(30)
        return answer

    def id_for(self, key: str) -> str:
        return self._ids[key]


@pytest.fixture
def server() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer() as s:
        yield s


def _worker() -> subprocess.Popen[bytes]:
    # The provider calls' timeout at its default (10 s): at 1 s a call on a loaded machine
    # (CI runs two suites at once) timed out now and then, and its retry waits a minute.
    env = {**os.environ, "CARTERA_DATABASE_URL": get_settings().database_url,
           "CARTERA_PLUGIN_TIMEOUT": "10", "CARTERA_LOG_LEVEL": "ERROR",
           "CARTERA_EGRESS_ALLOW": TEST_EGRESS_ALLOW}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.messaging.send_worker", "--batch-size", "20",
         "--lease-margin", "2"], cwd=ROOT, env=env)


async def _rows(stmt: Any) -> list[tuple[Any, ...]]:
    """``stmt``'s rows, read on a connection of its own (the worker holds none of it)."""
    engine = make_engine(get_settings().database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return [tuple(row) for row in (await session.execute(stmt)).all()]
    finally:
        await engine.dispose()


async def _statuses(ids: list[int]) -> Counter[str]:
    return Counter(dict(await _rows(select(Interaction.status, func.count()).where(
        Interaction.id.in_(ids)).group_by(Interaction.status))))


async def _wait(ids: list[int], done: bool, limit: float) -> Counter[str]:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        statuses = await _statuses(ids)
        if (statuses["sent"] == len(ids)) == done:
            return statuses
        await asyncio.sleep(0.2)
    raise AssertionError(f"gave up waiting: {await _statuses(ids)}; not sent: "
                         f"{await _unsent(ids)}")


async def _unsent(ids: list[int]) -> list[tuple[Any, ...]]:
    """Status, attempts, retry time and last error of the messages not sent yet."""
    return await _rows(select(
        Interaction.id, Interaction.status, Interaction.attempts, Interaction.not_before,
        Interaction.failure_code).where(Interaction.id.in_(ids), Interaction.status != "sent"))


async def test_killed_worker_loses_and_duplicates_nothing(tenant: TenantClient,
                                                         server: FakeHTTPServer) -> None:
    provider = IdempotentProvider(server, delay=0.02, hold_at=MESSAGES // 3 + 7)
    integration, template = await _setup(tenant, server)
    ids = await _send(tenant, await _debtors(tenant, MESSAGES), integration, template)
    keys = {f"cartera-interaction-{i}" for i in ids}

    worker = _worker()
    try:
        deadline = time.monotonic() + 60
        while not provider.holding.is_set():
            assert worker.poll() is None, "the worker died on its own"
            assert time.monotonic() < deadline, f"nothing was sent: {await _statuses(ids)}"
            await asyncio.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        provider.release.set()
        if worker.poll() is None:
            worker.kill()
    at_kill = await _statuses(ids)
    assert at_kill["sent"] < MESSAGES, at_kill  # the kill landed mid-batch
    assert at_kill["sending"] > 0, at_kill  # claims left behind, to be recovered

    worker = _worker()
    try:
        final = await _wait(ids, done=True, limit=90)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)

    assert final == Counter({"sent": MESSAGES})  # 0 lost
    assert set(provider.delivered) == keys
    assert set(provider.delivered.values()) == {1}  # 0 duplicated
    # Only a claim in flight at the kill can reach the provider again (then deduplicated on
    # its idempotency key): never a message whose outcome was recorded.
    resent = {k for k, n in provider.requests.items() if n > 1}
    assert 1 <= len(resent) <= at_kill["sending"]  # at least the held one went out again
    engine = make_engine(get_settings().database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = (await session.execute(select(
                Interaction.id, Interaction.provider_message_id, Interaction.attempts).where(
                Interaction.id.in_(ids)))).all()
            sent_events = Counter((await session.scalars(select(
                InteractionEvent.interaction_id).where(
                InteractionEvent.interaction_id.in_(ids),
                InteractionEvent.status == "sent"))).all())
    finally:
        await engine.dispose()
    assert set(sent_events.values()) == {1} and len(sent_events) == MESSAGES
    for interaction_id, provider_id, attempts in rows:
        assert provider_id == provider.id_for(f"cartera-interaction-{interaction_id}")
        resent_this = f"cartera-interaction-{interaction_id}" in resent
        # a lease that ran out on a starved machine may be claimed once more (at least once)
        assert attempts >= 2 if resent_this else attempts >= 1
