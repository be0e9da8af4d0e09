"""The ``cartera`` command: serve, worker, db upgrade, tenants/clients bootstrap, demo, import."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from cartera.settings import get_settings


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from cartera.db import migrate

    url = get_settings().database_url
    migrate.upgrade(url, args.revision)
    print(f"database upgraded to {args.revision}: {url.split('@')[-1]}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from cartera.api.app import serving_app

    if args.workers < 1:
        raise SystemExit("--workers must be at least 1")
    if args.workers == 1:
        uvicorn.run(serving_app(), host=args.host, port=args.port, log_config=None,
                    access_log=False)
        return 0
    # Several processes share the socket; each builds its own app (engine, caches, limits).
    uvicorn.run("cartera.api.app:serving_app", factory=True, host=args.host, port=args.port,
                log_config=None, access_log=False, workers=args.workers)
    return 0


async def _with_session(fn: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
    from cartera.db.engine import make_engine, make_sessionmaker

    engine = make_engine(get_settings().database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            result = await fn(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


def cmd_tenants_create(args: argparse.Namespace) -> int:
    from cartera.tenants.service import create_tenant

    async def go(session: Any) -> Any:
        return await create_tenant(session, slug=args.slug, name=args.name or args.slug,
                                   country=args.country, currency=args.currency,
                                   timezone=args.timezone)

    tenant = _run(_with_session(go))
    print(f"tenant {tenant.slug} created with id {tenant.id} ({tenant.country}, "
          f"{tenant.default_currency}, {tenant.timezone})")
    return 0


def cmd_clients_create(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from cartera.auth.clients import create_client
    from cartera.auth.scopes import DEFAULT_CLIENT_SCOPES, PLATFORM_SCOPES
    from cartera.tenants.models import Tenant

    async def go(session: Any) -> Any:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == args.tenant))
        if tenant is None:
            raise SystemExit(f"no tenant {args.tenant!r}")
        scopes = args.scopes.split() if args.scopes else list(DEFAULT_CLIENT_SCOPES)
        if args.platform:
            scopes = [*scopes, *sorted(PLATFORM_SCOPES - set(scopes))]
        return await create_client(session, tenant.id, args.name, scopes)

    client, secret = _run(_with_session(go))
    print(f"client_id:     {client.client_id}\nclient_secret: {secret}\nscopes:        "
          f"{client.scopes}\n(the secret is shown only now; store it safely)")
    return 0


def cmd_clients_grant(args: argparse.Namespace) -> int:
    import cartera.db.models  # noqa: F401  (every table: the ORM resolves foreign keys)
    from cartera.auth.clients import grant_scopes
    from cartera.errors import Invalid

    async def go(session: Any) -> Any:
        try:
            return await grant_scopes(session, args.client_id, args.scopes.split())
        except (LookupError, Invalid) as e:
            raise SystemExit(str(e)) from None

    client = _run(_with_session(go))
    print(f"client_id: {client.client_id}\nscopes:    {client.scopes}\n(new tokens carry them)")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cartera", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes sharing the port (default 1); see the README "
                            "on what each process keeps to itself")
    serve.set_defaults(fn=cmd_serve)

    db = sub.add_parser("db", help="database commands").add_subparsers(dest="db", required=True)
    up = db.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(fn=cmd_db_upgrade)

    tenants = sub.add_parser("tenants").add_subparsers(dest="tenants", required=True)
    tc = tenants.add_parser("create", help="create a tenant")
    tc.add_argument("slug")
    tc.add_argument("--name")
    tc.add_argument("--country", required=True)
    tc.add_argument("--currency", required=True)
    tc.add_argument("--timezone")
    tc.set_defaults(fn=cmd_tenants_create)

    clients = sub.add_parser("clients").add_subparsers(dest="clients", required=True)
    cc = clients.add_parser("create", help="create an OAuth2 client (secret shown once)")
    cc.add_argument("--tenant", required=True, help="tenant slug")
    cc.add_argument("--name", required=True)
    cc.add_argument("--scopes", help="space-separated; default: every tenant scope")
    cc.add_argument("--platform", action="store_true",
                    help="also grant platform:admin (manage tenants through /v1/tenants); "
                    "only this command grants it")
    cc.set_defaults(fn=cmd_clients_create)
    cg = clients.add_parser("grant", help="add scopes to an existing client")
    cg.add_argument("client_id")
    cg.add_argument("--scopes", required=True, help="space-separated, e.g. "
                    "'negotiation:read negotiation:write'")
    cg.set_defaults(fn=cmd_clients_grant)

    for extra in _extra_commands:
        extra(sub)
    return p


def _add_openapi(sub: Any) -> None:
    from cartera.api.openapi import add_command

    add_command(sub)


_extra_commands: list[Callable[[Any], None]] = [_add_openapi]


def cmd_worker(args: argparse.Namespace) -> int:
    from cartera.jobs.procrastinate_runner import run_worker

    _run(run_worker(get_settings(), concurrency=args.concurrency))
    return 0


def _add_worker(sub: Any) -> None:
    worker = sub.add_parser("worker", help="run background jobs until SIGINT/SIGTERM "
                            "(procrastinate on PostgreSQL, in-process on SQLite)")
    worker.add_argument("--concurrency", type=int, default=1,
                        help="jobs run at once by this process (default 1)")
    worker.set_defaults(fn=cmd_worker)


_extra_commands.append(_add_worker)


def cmd_secrets_rotate(args: argparse.Namespace) -> int:
    from cartera.crypto import keyring
    from cartera.secrets_rotation import reseal_all

    counts = _run(_with_session(lambda session: reseal_all(session, keyring())))
    done = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in counts.items())
    print(f"re-sealed {done} under the current master key; CARTERA_OLD_MASTER_KEYS can go now")
    return 0


def _add_secrets(sub: Any) -> None:
    secrets = sub.add_parser("secrets", help="secrets at rest").add_subparsers(
        dest="secrets", required=True)
    rotate = secrets.add_parser("rotate", help="re-seal every secret under the current key")
    rotate.set_defaults(fn=cmd_secrets_rotate)


_extra_commands.append(_add_secrets)


def cmd_plugins(args: argparse.Namespace) -> int:
    from cartera.plugins.host import load_host

    host = load_host(get_settings().plugin_timeout_seconds)
    for info in sorted(host.plugins.values(), key=lambda p: p.name):
        providers = ", ".join(f"{r.kind}/{r.name}" for r in info.providers) or "no providers"
        print(f"{info.name} {info.version or ''}: {providers}")
    for error in host.errors:
        print(f"FAILED {error.plugin} at {error.stage}: {error.error}")
    return 1 if host.errors else 0


def _add_plugins(sub: Any) -> None:
    plugins = sub.add_parser("plugins", help="installed plugins and those that failed to load "
                             "(with why: tenants are not shown load errors)")
    plugins.set_defaults(fn=cmd_plugins)


_extra_commands.append(_add_plugins)


def cmd_plugin_new(args: argparse.Namespace) -> int:
    from cartera.scaffold import ScaffoldError, new_plugin

    try:
        root = new_plugin(args.name, args.kind, Path(args.directory))
    except ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {root}; run its tests with: cd {root} && PYTHONPATH=. python -m pytest")
    return 0


def _add_plugin_new(sub: Any) -> None:
    from cartera.scaffold.templates import KINDS

    plugin = sub.add_parser("plugin", help="plugin development tools")
    actions = plugin.add_subparsers(dest="plugin_command", required=True)
    new = actions.add_parser("new", help="write a new plugin distribution that passes the "
                             "SDK's conformance suite against a strict fake")
    new.add_argument("name", help="entry-point name, lower case: acme_sms")
    new.add_argument("--kind", required=True, choices=sorted(KINDS))
    new.add_argument("--directory", default=".", help="where to create cartera-NAME/")
    new.set_defaults(fn=cmd_plugin_new)


_extra_commands.append(_add_plugin_new)


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from cartera.auth.keys import rotate
    from cartera.crypto import keyring

    ttl = get_settings().token_ttl_seconds
    done = _run(_with_session(lambda session: rotate(session, keyring(), ttl_seconds=ttl)))
    if done.new_kid is None:
        print("another rotation made the new key first; nothing changed here")
        return 0
    print(f"signing with the new key {done.new_kid}; "
          f"retired {', '.join(done.retired) or 'none'} (verifies for {ttl} s more); "
          f"dropped {', '.join(done.dropped) or 'none'}. Running apps pick it up within a "
          "minute (at once for tokens signed with it).")
    return 0


def _add_keys(sub: Any) -> None:
    keys = sub.add_parser("keys", help="token-signing keys").add_subparsers(
        dest="keys", required=True)
    rotate = keys.add_parser("rotate", help="sign with a new key; the old one keeps "
                             "verifying for one token lifetime, older ones are dropped")
    rotate.set_defaults(fn=cmd_keys_rotate)


_extra_commands.append(_add_keys)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except Exception as exc:  # a CLI prints a one-line reason, not a traceback
        from cartera.errors import CarteraError

        if isinstance(exc, CarteraError):
            print(f"error: {exc.detail}", file=sys.stderr)
            return 2
        raise


from cartera.demo.command import add_demo_command  # noqa: E402

_extra_commands.append(add_demo_command)

from cartera.events.cli import add_events_command  # noqa: E402
from cartera.imports import cli as _imports_cli  # noqa: E402, F401  (adds `cartera import`)

_extra_commands.append(add_events_command)

if __name__ == "__main__":
    raise SystemExit(main())
