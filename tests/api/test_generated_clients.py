"""The committed contract works with the generators ISVs use: openapi-python-client (from
PyPI, pinned in the dev extra) and openapi-typescript (from npm, through ``npx``).

Each generator must run without a warning or an error on ``openapi/openapi.json``; the
Python client is then imported and driven against the real app (a typed 200 from the segment
preview, a multipart upload to ``POST /v1/imports``), and the TypeScript types compile.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TenantClient

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "openapi" / "openapi.json"
PACKAGE = "cartera_generated_client"
# openapi-python-client writes raw bodies only as application/octet-stream; the import
# endpoint's NDJSON and CSV bodies are that (the client still sends their own media type).
PYTHON_CONFIG = {"content_type_overrides": {"application/x-ndjson": "application/octet-stream",
                                            "text/csv": "application/octet-stream"}}
TS_GENERATOR = "openapi-typescript@7.13.0"
TS_COMPILER = "typescript@5.9.3"
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET",
                  "network", "ERR_SOCKET")


def _warnings(output: str) -> list[str]:
    return [line for line in output.splitlines()
            if any(w in line.lower() for w in ("warning", "error", "unable", "unsupported"))]


@pytest.fixture(scope="module")
def python_client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    generator = Path(sys.executable).parent / "openapi-python-client"
    if not generator.exists():
        pytest.skip("openapi-python-client is not installed (pip install -e '.[dev]')")
    out = tmp_path_factory.mktemp("pyclient")
    config = out / "config.json"
    config.write_text(json.dumps(PYTHON_CONFIG))
    # its post hooks run ruff, which lives beside the interpreter
    env = {**os.environ, "PATH": f"{generator.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [str(generator), "generate", "--path", str(DOCUMENT), "--meta", "none",
         "--output-path", str(out / PACKAGE), "--config", str(config)],
        capture_output=True, text=True, env=env, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert not _warnings(output), output
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))


def test_python_client_generates_every_operation(python_client: Any) -> None:
    document = json.loads(DOCUMENT.read_text())
    generated = {p.stem for p in Path(python_client.__file__).parent.glob("api/*/*.py")}
    for item in document["paths"].values():
        for method, op in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                module = "".join(f"_{c.lower()}" if c.isupper() else c
                                 for c in op["operationId"]).lstrip("_")
                assert module in generated, op["operationId"]


async def test_generated_python_client_drives_the_api(python_client: Any,
                                                      tenant: TenantClient) -> None:
    client_mod = importlib.import_module(f"{PACKAGE}.client")
    models = importlib.import_module(f"{PACKAGE}.models")
    types = importlib.import_module(f"{PACKAGE}.types")
    preview = importlib.import_module(f"{PACKAGE}.api.segments.preview_segments")
    create_import = importlib.import_module(f"{PACKAGE}.api.imports.create_import")

    api = client_mod.AuthenticatedClient(base_url=str(tenant.api.base_url), token="unused")
    api.set_async_httpx_client(tenant.api)

    catch_all = models.SegmentIn(code="all", name="Everyone",
                                 rule=models.RuleAll(all_=[]))
    answer = await preview.asyncio_detailed(client=api,
                                            body=models.RuleSetIn(segments=[catch_all]))
    assert answer.status_code == 200, answer.content
    assert isinstance(answer.parsed, models.SegmentationPreviewOut)

    ndjson = b'{"type":"debtor","external_ref":"GEN-1","name":"Ana","country":"PE"}\n'
    upload = models.CreateImportFilesBody(file=types.File(
        payload=io.BytesIO(ndjson), file_name="debtors.ndjson", mime_type="application/x-ndjson"))
    created = await create_import.asyncio_detailed(client=api, body=upload)
    assert created.status_code == 202, created.content
    assert isinstance(created.parsed, models.ImportOut)
    assert created.parsed.format_ == "ndjson" and created.parsed.filename == "debtors.ndjson"


def _npx(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("npx (Node.js) is not installed: openapi-typescript cannot run")
    done = subprocess.run([npx, "--yes", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)
    if done.returncode != 0 and any(e in done.stderr for e in NETWORK_ERRORS):
        pytest.skip(f"npm registry unreachable: {done.stderr.strip().splitlines()[-1]}")
    return done


def test_typescript_types_generate_and_compile(tmp_path: Path) -> None:
    out = tmp_path / "cartera.d.ts"
    done = _npx(TS_GENERATOR, str(DOCUMENT), "--output", str(out), cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert not _warnings(output), output
    types = out.read_text()
    assert '"/v1/segments/preview"' in types and "SegmentationPreviewOut" in types
    compiled = _npx("-p", TS_COMPILER, "tsc", "--noEmit", "--strict", str(out), cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
