"""The application factory: wires domains, conventions, auth, jobs and OpenAPI together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from litestar import Litestar, Request, Response
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, OAuthFlow, OAuthFlows, SecurityScheme, Server
from litestar.openapi.spec import Tag as OpenAPITag
from litestar.static_files import create_static_files_router

from cartera import __version__
from cartera.api.context import AppContext, provide_actor, provide_session
from cartera.api.idempotency import idempotency_middleware
from cartera.api.location import location_middleware
from cartera.api.openapi import install as complete_openapi
from cartera.api.parameters import before_request as check_parameters
from cartera.api.problems import EXCEPTION_HANDLERS
from cartera.api.ratelimit import rate_limit_middleware
from cartera.api.security import CLIENT_BASIC_SCHEME, OAUTH2_SCHEME, authentication_middleware
from cartera.auth.keys import SigningKeys, load, load_or_create
from cartera.auth.revocation import TokenState
from cartera.auth.routes import ROUTES as AUTH_ROUTES
from cartera.auth.scopes import SCOPES
from cartera.auth.tokens import TokenService
from cartera.crypto import keyring
from cartera.db import migrate
from cartera.db.engine import make_engine, make_read_engine, make_read_pool, make_sessionmaker
from cartera.jobs.registry import install_runner
from cartera.jobs.routes import JobController
from cartera.jobs.runner import InProcessRunner, JobRunner
from cartera.ops import logging as ops_logging
from cartera.ops.heap import freeze_startup_heap
from cartera.ops.middleware import request_context_middleware
from cartera.ops.routes import ROUTES as OPS_ROUTES
from cartera.payments.routes import PaymentController
from cartera.plugins import registry as plugin_registry
from cartera.plugins.host import load_host
from cartera.portfolio.routes import DebtorController, ObligationController, PortfolioController
from cartera.reports.routes import aging
from cartera.settings import Settings, get_settings, install_settings

DESCRIPTION = """Cartera is a headless collections-management API (gestión de cobranzas).

Conventions: every error is RFC 9457 `application/problem+json` with a stable `code` (and
`param` when one field is at fault, `instance` and `request_id` always); lists use cursor
pagination (`limit`, `starting_after` or `ending_before`, `has_more`) and take `sort` and
`created[gte]`-style ranges; a 201 names the new object in `Location`; single-object reads
carry an `ETag` that updates take as `If-Match` (412 when stale); POSTs accept an
`Idempotency-Key`; money is an exact decimal string with its ISO
4217 currency; authenticate with OAuth 2.0 client credentials at `/oauth/token`. A query
parameter an operation does not take is refused (400 `unknown_parameter`), and the token
endpoint, the webhook route and expensive operations are rate-limited (429 with
`Retry-After`).
"""


def openapi_config(issuer: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Cartera API",
        version=__version__,
        description=DESCRIPTION,
        # Relative, so the document is the same wherever it is served (and committed as is).
        servers=[Server(url="/", description="This server")],
        path="/docs",
        use_handler_docstrings=True,
        render_plugins=[docs_plugin()],
        tags=[OpenAPITag(name=n) for n in ("OAuth2", "Portfolios", "Debtors", "Obligations",
                                            "Payments", "Imports", "Reports", "Segments", "Jobs",
                                            "Plugins", "Integrations", "Webhooks",
                                            "Messaging", "Negotiation", "Offers",
                                            "Self-service",
                                            "Audit", "Operations", "Clients", "Tenants")],
        components=Components(security_schemes={
            OAUTH2_SCHEME: SecurityScheme(
                type="oauth2",
                description="OAuth 2.0 client credentials; tokens are RS256 JWTs (RFC 9068).",
                flows=OAuthFlows(client_credentials=OAuthFlow(
                    token_url="/oauth/token", scopes=dict(SCOPES))),
            ),
            "self_service_token": SecurityScheme(
                type="apiKey", name="X-Self-Service-Token", security_scheme_in="header",
                description="A debtor's self-service link token (``/self-service`` only; "
                            "issued by ``POST /v1/self-service-links``).",
            ),
            CLIENT_BASIC_SCHEME: SecurityScheme(
                type="http", scheme="basic",
                description="`client_secret_basic` at the token endpoint: the client id and "
                            "secret as HTTP Basic credentials.",
            ),
        }),
    )


DOCS_ASSETS = "/docs/assets"
"""Where the pinned Swagger UI files of the ``swagger-ui-py`` package are served: ``/docs``
loads nothing from elsewhere, so it works without internet."""


def docs_plugin() -> SwaggerRenderPlugin:
    """Swagger UI from :data:`DOCS_ASSETS` (the plugin's default is an unpinned CDN)."""
    return SwaggerRenderPlugin(
        js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js", css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{DOCS_ASSETS}/swagger-ui-standalone-preset.js",
        favicon=f'<link rel="icon" type="image/png" href="{DOCS_ASSETS}/favicon-32x32.png">',
        path="/swagger")


def docs_assets() -> Any:
    from pathlib import Path

    import swagger_ui

    return create_static_files_router(
        path=DOCS_ASSETS, directories=[Path(swagger_ui.__file__).parent / "static"],
        include_in_schema=False, name="docs-assets")


def cors_config(settings: Settings) -> CORSConfig | None:
    """CORS for the origins of ``CARTERA_CORS_ORIGINS`` only; none configured: no CORS.
    Bearer tokens, not cookies, so no credentials; the headers a browser client needs to
    read (``Location``, ``ETag``, ``Retry-After``, the request id) are exposed."""
    if not settings.cors_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.cors_origins), allow_credentials=False,
        allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-Match",
                       "If-None-Match", "X-Request-Id"],
        expose_headers=["Location", "ETag", "Retry-After", "X-Request-Id", "Idempotent-Replayed"],
        max_age=600)


def route_handlers() -> list[Any]:
    from cartera.audit.routes import audit_entries
    from cartera.auth.client_routes import ClientController
    from cartera.compliance.routes import ROUTES as COMPLIANCE_ROUTES
    from cartera.erpsync.routes import ROUTES as ERPSYNC_ROUTES
    from cartera.events.routes import ROUTES as EVENT_ROUTES
    from cartera.imports.routes import ImportController
    from cartera.integrations.routes import ROUTES as INTEGRATION_ROUTES
    from cartera.messaging.routes import ROUTES as MESSAGING_ROUTES
    from cartera.negotiation.routes import ROUTES as NEGOTIATION_ROUTES
    from cartera.offers.routes import ROUTES as OFFER_ROUTES
    from cartera.payments.link_routes import ROUTES as PAYMENT_LINK_ROUTES
    from cartera.plugins.routes import list_plugins
    from cartera.segmentation.routes import SegmentController, StageController
    from cartera.selfservice.routes import ROUTES as SELF_SERVICE_ROUTES
    from cartera.strategies.routes import ROUTES as STRATEGY_ROUTES
    from cartera.tenants.routes import TenantController

    return [*AUTH_ROUTES, *OPS_ROUTES, PortfolioController, DebtorController,
            ObligationController, PaymentController, ImportController, JobController, aging,
            list_plugins, *INTEGRATION_ROUTES, *ERPSYNC_ROUTES, SegmentController,
            *MESSAGING_ROUTES, StageController, *NEGOTIATION_ROUTES, *STRATEGY_ROUTES,
            audit_entries, *COMPLIANCE_ROUTES, ClientController, TenantController, *EVENT_ROUTES,
            *PAYMENT_LINK_ROUTES, *OFFER_ROUTES, *SELF_SERVICE_ROUTES,
            docs_assets()]


def create_app(settings: Settings | None = None, *, check_migrations: bool = True,
               runner_factory: Any = None, freeze_heap: bool = False) -> Litestar:
    """Build the ASGI app. It refuses to start on a database that is not migrated.
    ``freeze_heap``: :func:`freeze_startup_heap` once started (what a serving process
    wants; tests build many apps in one process and leave it off)."""
    settings = settings or get_settings()
    install_settings(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        if check_migrations:
            current = await migrate.current_revision(engine)
            head = migrate.head_revision(settings.database_url)
            if current != head:
                await engine.dispose()
                raise migrate.DatabaseNotMigrated(
                    f"database is at revision {current or 'none'}, code needs {head}: "
                    "run `cartera db upgrade`")
        sessionmaker = make_sessionmaker(engine)
        read_engine = make_read_engine(settings.database_url, settings.statement_timeout_ms)
        read_pool = make_read_pool(settings.database_url, settings.statement_timeout_ms)
        plugin_registry.install(load_host(settings.plugin_timeout_seconds))
        ttl = settings.token_ttl_seconds
        async with sessionmaker() as session:
            keys = await load_or_create(session, keyring(), ttl_seconds=ttl)
            await session.commit()

        async def reload_keys() -> SigningKeys:
            async with sessionmaker() as session:
                return await load(session, keyring(), ttl_seconds=ttl)

        runner: JobRunner = (runner_factory or default_runner)(settings, sessionmaker)
        app.state.ctx = AppContext(settings=settings, engine=engine, sessionmaker=sessionmaker,
                                   tokens=TokenService(
                                       settings.issuer, keys, ttl, loader=reload_keys,
                                       state=TokenState(sessionmaker,
                                                        settings.token_state_cache_seconds)),
                                   jobs=runner,
                                   read_sessionmaker=(make_sessionmaker(read_engine)
                                                      if read_engine is not None else None),
                                   read_pool=read_pool)
        install_runner(runner)
        await runner.start()
        if freeze_heap:
            freeze_startup_heap()
        try:
            yield
        finally:
            await runner.stop()
            await engine.dispose()
            if read_engine is not None:
                await read_engine.dispose()
            if read_pool is not None:
                await read_pool.close()

    ops_logging.configure(settings.log_level)
    app = Litestar(
        route_handlers=route_handlers(),
        lifespan=[lifespan],
        dependencies={"session": Provide(provide_session), "actor": Provide(provide_actor)},
        middleware=[cast(Any, request_context_middleware), cast(Any, location_middleware),
                    cast(Any, authentication_middleware),
                    *rate_limit_middleware(settings), cast(Any, idempotency_middleware)],
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=before_request,
        openapi_config=openapi_config(settings.issuer),
        cors_config=cors_config(settings),
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,
        debug=False,
    )
    complete_openapi(app)
    return app


def serving_app(settings: Settings | None = None) -> Litestar:
    """The app ``cartera serve`` runs, in each of its worker processes: :func:`create_app`
    with its heap frozen once started."""
    return create_app(settings, freeze_heap=True)


async def before_request(request: Request[Any, Any, Any]) -> Response[None] | None:
    """OPTIONS answers every method of the path; every other request gets its parameters
    checked (:mod:`cartera.api.parameters`)."""
    if request.method == "OPTIONS":
        return allow_response(request)
    await check_parameters(request)
    return None


def allow_response(request: Request[Any, Any, Any]) -> Response[None]:
    """Litestar's own OPTIONS handler lists only the methods of the first handlers
    registered on a path when several controllers share it; this lists them all."""
    paths = request.scope["route_handler"].paths
    methods = sorted({m for route in request.app.routes if route.path in paths
                      for m in getattr(route, "methods", ())} | {"OPTIONS"})
    return Response(None, status_code=204, headers={"Allow": ", ".join(methods)})


def default_runner(settings: Settings, sessionmaker: Any) -> JobRunner:
    if settings.run_jobs_in_process:
        return InProcessRunner(sessionmaker)
    from cartera.jobs.procrastinate_runner import ProcrastinateRunner

    return ProcrastinateRunner(settings, sessionmaker)
