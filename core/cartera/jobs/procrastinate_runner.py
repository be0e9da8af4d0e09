"""Procrastinate-backed runner for PostgreSQL (see ``runner.JobRunner``)."""

from __future__ import annotations

from typing import Any

from cartera.jobs.runner import InProcessRunner


class ProcrastinateRunner(InProcessRunner):
    """Temporary: runs in process until the procrastinate integration lands."""

    def __init__(self, settings: Any, sessionmaker: Any) -> None:
        super().__init__(sessionmaker)
