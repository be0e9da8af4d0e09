"""CORS only for the deployment's allow-list (off by default), and ``/docs`` served from
pinned local assets (no CDN), rendered in a headless browser when one is installed."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from cartera.api.app import DOCS_ASSETS, create_app
from cartera.jobs.runner import InProcessRunner
from cartera.settings import Settings, install_settings, parse_origins
from tests.conftest import TenantClient

ALLOWED = "https://app.example.com"
BASE = "http://testserver.local"


@pytest.fixture
async def cors_http(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    configured = dataclasses.replace(settings, cors_origins=(ALLOWED,))
    app = create_app(configured,
                     runner_factory=lambda s, sm: InProcessRunner(sm, background=False))
    try:
        async with AsyncTestClient(app, base_url=BASE) as client:
            yield client
    finally:
        install_settings(settings)


def _preflight(origin: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"}


async def test_cors_is_off_by_default(http: AsyncTestClient[Litestar],
                                      tenant: TenantClient) -> None:
    r = await http.options("/v1/debtors", headers=_preflight(ALLOWED))
    assert "access-control-allow-origin" not in r.headers
    r = await tenant.api.get("/v1/debtors", headers={"Origin": ALLOWED})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


async def test_cors_allows_only_the_listed_origins(cors_http: AsyncTestClient[Litestar],
                                                   http: AsyncTestClient[Litestar],
                                                   tenant: TenantClient) -> None:
    r = await cors_http.options("/v1/debtors", headers=_preflight(ALLOWED))
    assert r.status_code in (200, 204), r.text
    assert r.headers["access-control-allow-origin"] == ALLOWED
    allowed_headers = r.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "idempotency-key"} <= {
        h.strip() for h in allowed_headers.split(",")}
    assert "access-control-allow-credentials" not in r.headers
    refused = await cors_http.options("/v1/debtors", headers=_preflight("https://evil.example"))
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    token = tenant.api.headers["authorization"]
    r = await cors_http.get("/v1/debtors", headers={"Origin": ALLOWED, "Authorization": token})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ALLOWED
    assert "location" in r.headers["access-control-expose-headers"].lower()
    r = await cors_http.get("/v1/debtors", headers={"Origin": "https://evil.example",
                                                    "Authorization": token})
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize("text", ["*", "https://app.example.com/path", "app.example.com",
                                  "ftp://x.example"])
def test_the_allow_list_takes_origins_only(text: str) -> None:
    with pytest.raises(ValueError, match="CARTERA_CORS_ORIGINS"):
        parse_origins(text)
    assert parse_origins(" https://a.example , http://localhost:3000/ ") == (
        "https://a.example", "http://localhost:3000")


def _asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


async def test_docs_reference_only_local_assets_and_they_are_served(
        http: AsyncTestClient[Litestar]) -> None:
    r = await http.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    urls = _asset_urls(r.text)
    assert urls and all(u.startswith(f"{DOCS_ASSETS}/") for u in urls), urls
    assert "cdn" not in r.text.lower() and "unpkg" not in r.text.lower()
    assert {f"{DOCS_ASSETS}/swagger-ui-bundle.js", f"{DOCS_ASSETS}/swagger-ui.css"} <= set(urls)
    for url in urls:
        asset = await http.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    assert (await http.get(f"{DOCS_ASSETS}/nope.js")).status_code == 404


CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser",
                                                       "google-chrome")) if p), None)


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """The app on a real loopback port (the browser needs one)."""
    import socket

    import uvicorn

    app = create_app(settings, runner_factory=lambda s, sm: InProcessRunner(
        sm, background=False))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        install_settings(settings)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")
def test_docs_render_in_a_headless_browser_without_internet(served: str,
                                                            tmp_path: Path) -> None:
    assert CHROMIUM is not None
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-dev-shm-usage",
             # any request off this machine fails: the page must need none
             "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
             "--window-size=1280,1024"]
    dom = subprocess.run([*flags, "--dump-dom", f"{served}/docs"], capture_output=True,
                         text=True, timeout=120).stdout
    # Swagger UI builds its page in the browser: the served HTML has none of these
    assert 'class="swagger-ui' in dom, dom[:2000]
    assert re.search(r'<h2[^>]*class="title"[^>]*>\s*Cartera API', dom), dom[:2000]
    assert "/oauth/token" in dom
    shot = tmp_path / "docs.png"
    subprocess.run([*flags, f"--screenshot={shot}", f"{served}/docs"], capture_output=True,
                   timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
