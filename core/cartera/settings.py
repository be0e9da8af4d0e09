"""Runtime configuration, read once from ``CARTERA_*`` environment variables.

Secrets (the master key) come from the environment or, for a local embedded run, from a
key file created on first use under ``CARTERA_HOME`` (default ``./.cartera``).
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


def _home() -> Path:
    return Path(os.environ.get("CARTERA_HOME", ".cartera")).resolve()


def _default_database_url() -> str:
    return f"sqlite+aiosqlite:///{_home() / 'cartera.db'}"


def _master_key() -> bytes:
    """The 32-byte key that encrypts secrets at rest (signing keys, integration secrets)."""
    configured = os.environ.get("CARTERA_MASTER_KEY")
    if configured:
        return base64.urlsafe_b64decode(configured)
    path = _home() / "master.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.urlsafe_b64encode(secrets.token_bytes(32)))
        path.chmod(0o600)
    return base64.urlsafe_b64decode(path.read_bytes())


@dataclass(frozen=True)
class Settings:
    """Process-wide settings; build with :func:`get_settings`."""

    database_url: str = field(default_factory=_default_database_url)
    issuer: str = "http://localhost:8000"
    public_base_url: str | None = None
    """Scheme, host (and path prefix) the outside world reaches this server at, behind any
    proxy: the only source of URLs handed to providers (webhook and status-callback URLs)
    and of the URL provider signatures are checked against. Defaults to ``issuer``."""
    token_ttl_seconds: int = 900
    max_body_bytes: int = 1_048_576
    max_import_bytes: int = 2_147_483_648
    log_level: str = "INFO"
    plugin_timeout_seconds: float = 10.0
    """Upper bound on any single call into a plugin."""
    jobs_inline: bool | None = None
    """Run jobs in-process; ``None`` means: yes on SQLite, no (procrastinate) on PostgreSQL."""

    @property
    def public_base(self) -> str:
        """:attr:`public_base_url`, else the issuer; without a trailing slash."""
        return (self.public_base_url or self.issuer).rstrip("/")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def run_jobs_in_process(self) -> bool:
        return self.is_sqlite if self.jobs_inline is None else self.jobs_inline

    def master_key(self) -> bytes:
        return _master_key()

    @property
    def home(self) -> Path:
        return _home()


def _bool_env(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    return value.lower() in {"1", "true", "yes", "on"}


_installed: Settings | None = None


def install_settings(settings: Settings) -> None:
    """Make ``settings`` what :func:`get_settings` returns (an app built with explicit
    settings installs them, so jobs and plugins see the same configuration)."""
    global _installed
    _installed = settings


def get_settings() -> Settings:
    """The installed settings, else settings read from the environment (cached)."""
    return _installed or _settings_from_env()


def clear_settings_cache() -> None:
    """Forget the installed settings and re-read the environment next time."""
    global _installed
    _installed = None
    _settings_from_env.cache_clear()


@lru_cache(maxsize=1)
def _settings_from_env() -> Settings:
    env = os.environ
    kwargs: dict[str, object] = {}
    if env.get("CARTERA_DATABASE_URL"):
        kwargs["database_url"] = normalise_database_url(env["CARTERA_DATABASE_URL"])
    if env.get("CARTERA_ISSUER"):
        kwargs["issuer"] = env["CARTERA_ISSUER"].rstrip("/")
    if env.get("CARTERA_PUBLIC_BASE_URL"):
        kwargs["public_base_url"] = env["CARTERA_PUBLIC_BASE_URL"].rstrip("/")
    if env.get("CARTERA_TOKEN_TTL"):
        kwargs["token_ttl_seconds"] = int(env["CARTERA_TOKEN_TTL"])
    if env.get("CARTERA_LOG_LEVEL"):
        kwargs["log_level"] = env["CARTERA_LOG_LEVEL"]
    if env.get("CARTERA_PLUGIN_TIMEOUT"):
        kwargs["plugin_timeout_seconds"] = float(env["CARTERA_PLUGIN_TIMEOUT"])
    kwargs["jobs_inline"] = _bool_env("CARTERA_JOBS_INLINE")
    return Settings(**kwargs)  # type: ignore[arg-type]


def normalise_database_url(url: str) -> str:
    """Pick the async driver we ship for a plain ``postgresql://`` or ``sqlite://`` URL."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url
