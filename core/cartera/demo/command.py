"""``cartera demo``: migrate, make the demo tenant and client, load the portfolio, serve.

Idempotent: the tenant and client are reused, the portfolio is loaded only into an empty
tenant, and the client gets a fresh secret on every run (only its hash is stored), which is
printed with a ready-to-paste ``curl``.
"""

from __future__ import annotations

import argparse
import os
import secrets
from dataclasses import dataclass
from typing import Any

DEMO_SLUG = "demo"
DEMO_CLIENT_NAME = "demo"
DEFAULT_DEBTORS = 5_000
DEFAULT_SEED = 20_240_601


@dataclass(frozen=True)
class DemoSetup:
    tenant_id: int
    client_id: str
    client_secret: str
    debtors: int
    loaded: bool
    seconds: float
    obligations: int
    payments: int


async def prepare(database_url: str, debtors: int, seed: int) -> DemoSetup:
    """Create (or reuse) the demo tenant and client, rotate the secret, load if empty."""
    from sqlalchemy import func, select

    from cartera.auth.clients import create_client, hash_secret
    from cartera.auth.models import OAuthClient
    from cartera.clock import today_in
    from cartera.db.engine import make_engine, make_sessionmaker
    from cartera.demo.generator import load_demo_portfolio
    from cartera.demo.strategies import configure as configure_strategies
    from cartera.plugins.registry import current_host
    from cartera.portfolio.models import Debtor
    from cartera.tenants.models import Tenant
    from cartera.tenants.service import create_tenant

    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG))
            if tenant is None:
                tenant = await create_tenant(session, slug=DEMO_SLUG, name="Cartera Demo",
                                             country="PE", currency="PEN",
                                             timezone="America/Lima")
            client = await session.scalar(
                select(OAuthClient).where(OAuthClient.tenant_id == tenant.id,
                                          OAuthClient.name == DEMO_CLIENT_NAME)
                .order_by(OAuthClient.id).limit(1))
            if client is None:
                client, secret = await create_client(session, tenant.id, DEMO_CLIENT_NAME)
            else:
                secret = secrets.token_urlsafe(32)
                client.secret_hash = hash_secret(secret)
                client.disabled = False
            summary = await load_demo_portfolio(session, tenant.id, debtors, seed,
                                                today_in(tenant.timezone))
            await configure_strategies(session, current_host(), tenant.id)
            count = await session.scalar(
                select(func.count()).select_from(Debtor).where(Debtor.tenant_id == tenant.id))
            await session.commit()
            return DemoSetup(tenant.id, client.client_id, secret, int(count or 0),
                             summary.loaded, summary.seconds, summary.obligations,
                             summary.payments)
    finally:
        await engine.dispose()


def cmd_demo(args: argparse.Namespace) -> int:
    import asyncio

    from cartera.db import migrate
    from cartera.settings import clear_settings_cache, get_settings

    base = f"http://{args.host}:{args.port}"
    if not os.environ.get("CARTERA_ISSUER"):
        # tokens and the OpenAPI "servers" entry should name the address we serve on
        os.environ["CARTERA_ISSUER"] = base
        clear_settings_cache()
    url = get_settings().database_url
    print(f"migrating {url.split('@')[-1]} ...", flush=True)
    migrate.upgrade(url)
    print(f"preparing the demo tenant ({args.debtors} debtors if empty) ...", flush=True)
    setup = asyncio.run(prepare(url, args.debtors, args.seed))
    if setup.loaded:
        print(f"loaded {setup.debtors} debtors, {setup.obligations} obligations and "
              f"{setup.payments} payments in {setup.seconds:.1f} s")
    else:
        print(f"demo portfolio already loaded ({setup.debtors} debtors)")
    print(_banner(base, setup))
    if args.no_serve:
        return 0
    from cartera.cli import cmd_serve

    return cmd_serve(args)


def _banner(base: str, setup: DemoSetup) -> str:
    return f"""
  Cartera demo (tenant "{DEMO_SLUG}", id {setup.tenant_id})
  API docs:       {base}/docs
  client_id:      {setup.client_id}
  client_secret:  {setup.client_secret}
  (a new secret is issued on every `cartera demo` run)

  export CLIENT_ID={setup.client_id} CLIENT_SECRET={setup.client_secret}
  TOKEN=$(curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials \\
          {base}/oauth/token \\
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s -H "Authorization: Bearer $TOKEN" {base}/v1/aging
  curl -s -H "Authorization: Bearer $TOKEN" "{base}/v1/debtors?zone=Lima&dpd_min=30&limit=5"
  curl -s -H "Authorization: Bearer $TOKEN" "{base}/v1/actions?status=planned&limit=5"
  curl -s -H "Authorization: Bearer $TOKEN" {base}/v1/debtors/1/next-action
  curl -s -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
       -d '{{"days": 30}}' {base}/v1/strategies/1/simulate
"""


def add_demo_command(sub: Any) -> None:
    """Register ``cartera demo`` on the CLI's sub-parsers."""
    demo = sub.add_parser("demo", help="migrate, load a demo tenant and portfolio, serve")
    demo.add_argument("--debtors", type=int, default=DEFAULT_DEBTORS,
                      help=f"debtors to generate into an empty demo tenant "
                           f"(default {DEFAULT_DEBTORS})")
    demo.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--no-serve", action="store_true",
                      help="prepare the demo and print the credentials, do not serve")
    # One serving process: the demo runs on the embedded database, where every worker
    # process would run the in-process jobs too.
    demo.set_defaults(fn=cmd_demo, workers=1)
