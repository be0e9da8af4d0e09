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


class MasterKeyMissing(RuntimeError):
    """No ``CARTERA_MASTER_KEY`` for a database that is not the embedded SQLite one."""


def _master_key(*, embedded: bool) -> bytes:
    """The 32-byte key that encrypts secrets at rest (signing keys, integration secrets).

    Only an embedded (SQLite) run makes one itself, in ``CARTERA_HOME/master.key``, created
    with mode 0600 (never readable by others, not even for an instant); a server database
    needs the key from the environment, kept apart from the data it protects.
    """
    configured = os.environ.get("CARTERA_MASTER_KEY")
    if configured:
        return base64.urlsafe_b64decode(configured)
    path = _home() / "master.key"
    if not embedded:
        raise MasterKeyMissing(
            "CARTERA_MASTER_KEY is not set: with a PostgreSQL database the master key must "
            "come from the environment (32 random bytes, base64url, e.g. `python -c "
            "\"import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())\"`)")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _create_key_file(path)
    return base64.urlsafe_b64decode(path.read_bytes())


def _create_key_file(path: Path) -> None:
    """Write a new key to a private temporary file, then link it into place: another
    process starting at once either made ``path`` first (theirs is kept) or sees ours whole."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(base64.urlsafe_b64encode(secrets.token_bytes(32)))
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)


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
    import_retention_days: int = 0
    """Days an uploaded import file is kept after its import ends; 0: deleted at the end."""
    compliance_decision_retention_days: int = 1095
    """``CARTERA_COMPLIANCE_DECISION_RETENTION_DAYS``: days a gate decision is kept in the
    decision log; 0 keeps them forever. At least :data:`MIN_DECISION_RETENTION_DAYS`."""
    log_level: str = "INFO"
    plugin_timeout_seconds: float = 10.0
    """Upper bound on any single call into a plugin."""
    egress_allow: str = ""
    """``CARTERA_EGRESS_ALLOW``: hosts, IPs or CIDRs (optionally ``:port``) providers may
    reach although not public, and without TLS (see :mod:`cartera_sdk.egress`)."""
    jobs_inline: bool | None = None
    """Run jobs in-process; ``None`` means: yes on SQLite, no (procrastinate) on PostgreSQL."""
    job_stop_timeout_seconds: float = 10.0
    """``CARTERA_JOB_STOP_TIMEOUT``: on shutdown, how long the in-process job runner lets
    its running periodic pass or job finish before it cancels it."""
    idempotency_ttl_seconds: int = 86_400
    """How long a stored ``Idempotency-Key`` response is replayed; after that the key is new."""
    idempotency_lease_seconds: int = 300
    """An in-flight key older than this was abandoned (a crash) and a retry may take it over."""
    statement_timeout_ms: int = 15_000
    """Upper bound on each SQL statement of an API request (PostgreSQL); 0 disables it.
    Workers, imports and segmentation runs are not bound by it."""
    rate_limit_token: str = "30/minute"
    """Requests to ``/oauth/token`` per remote address (``N/second|minute|hour|day``)."""
    rate_limit_webhooks: str = "600/minute"
    """Requests to the public webhook route per remote address."""
    rate_limit_expensive: str = "60/minute"
    """Expensive operations (imports, segmentation runs and previews, message sends) per
    OAuth client."""
    rate_limit_self_service: str = "60/minute"
    """``CARTERA_RATE_LIMIT_SELF_SERVICE``: debtor-facing ``/self-service`` requests per
    access link (per remote address when no link token is given)."""
    self_service_url: str | None = None
    """``CARTERA_SELF_SERVICE_URL``: the debtor-facing page a self-service link opens (the
    token is appended as ``?token=``); the API's ``/self-service`` base when unset."""
    client_secret_grace_seconds: int = 86_400
    """``CARTERA_CLIENT_SECRET_GRACE``: how long a client's previous secret keeps working
    after ``POST /v1/clients/{id}/rotate-secret``."""
    token_state_cache_seconds: float = 1.0
    """``CARTERA_TOKEN_STATE_CACHE``: how long a process remembers that a token's client is
    enabled and the token not revoked (0: ask the database on every request). A change made
    through one process applies there at once, in other worker processes within this."""
    cors_origins: tuple[str, ...] = ()
    """``CARTERA_CORS_ORIGINS``: comma-separated browser origins allowed to call the API
    (e.g. ``https://app.example.com``); empty (the default): no CORS headers at all."""

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
        return _master_key(embedded=self.is_sqlite)

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
    if env.get("CARTERA_EGRESS_ALLOW"):
        kwargs["egress_allow"] = env["CARTERA_EGRESS_ALLOW"]
    if env.get("CARTERA_IMPORT_RETENTION_DAYS"):
        kwargs["import_retention_days"] = int(env["CARTERA_IMPORT_RETENTION_DAYS"])
    if env.get("CARTERA_COMPLIANCE_DECISION_RETENTION_DAYS"):
        kwargs["compliance_decision_retention_days"] = decision_retention(
            env["CARTERA_COMPLIANCE_DECISION_RETENTION_DAYS"])
    kwargs["jobs_inline"] = _bool_env("CARTERA_JOBS_INLINE")
    if env.get("CARTERA_JOB_STOP_TIMEOUT"):
        kwargs["job_stop_timeout_seconds"] = float(env["CARTERA_JOB_STOP_TIMEOUT"])
    if env.get("CARTERA_CORS_ORIGINS"):
        kwargs["cors_origins"] = parse_origins(env["CARTERA_CORS_ORIGINS"])
    if env.get("CARTERA_TOKEN_STATE_CACHE"):
        kwargs["token_state_cache_seconds"] = float(env["CARTERA_TOKEN_STATE_CACHE"])
    for name, attr in (("CARTERA_IDEMPOTENCY_TTL", "idempotency_ttl_seconds"),
                       ("CARTERA_IDEMPOTENCY_LEASE", "idempotency_lease_seconds"),
                       ("CARTERA_CLIENT_SECRET_GRACE", "client_secret_grace_seconds"),
                       ("CARTERA_STATEMENT_TIMEOUT_MS", "statement_timeout_ms")):
        if env.get(name):
            kwargs[attr] = int(env[name])
    for name, attr in (("CARTERA_RATE_LIMIT_TOKEN", "rate_limit_token"),
                       ("CARTERA_RATE_LIMIT_WEBHOOKS", "rate_limit_webhooks"),
                       ("CARTERA_RATE_LIMIT_EXPENSIVE", "rate_limit_expensive"),
                       ("CARTERA_RATE_LIMIT_SELF_SERVICE", "rate_limit_self_service"),
                       ("CARTERA_SELF_SERVICE_URL", "self_service_url")):
        if env.get(name):
            kwargs[attr] = env[name]
    return Settings(**kwargs)  # type: ignore[arg-type]


MIN_DECISION_RETENTION_DAYS = 730
"""Chile's record-keeping rule: the type and frequency of collection actions per debtor are
kept at least two years (``reference/compliance.md`` on Chile); no shorter setting is taken."""


def decision_retention(text: str) -> int:
    """The decision log's retention in days: 0 (forever) or at least two years."""
    days = int(text)
    if days != 0 and days < MIN_DECISION_RETENTION_DAYS:
        raise ValueError(f"CARTERA_COMPLIANCE_DECISION_RETENTION_DAYS must be 0 (keep forever) "
                         f"or at least {MIN_DECISION_RETENTION_DAYS} days, not {days}")
    return days


def parse_origins(text: str) -> tuple[str, ...]:
    """``scheme://host[:port]`` origins, comma-separated; a wildcard or a path is refused
    (the allow-list is explicit)."""
    origins = tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if scheme not in {"http", "https"} or not sep or not rest or "/" in rest or "*" in rest:
            raise ValueError(f"CARTERA_CORS_ORIGINS: {origin!r} is not an origin "
                             "(scheme://host[:port])")
    return origins


def normalise_database_url(url: str) -> str:
    """Pick the async driver we ship for a plain ``postgresql://`` or ``sqlite://`` URL."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url
