"""`cartera import FILE --tenant SLUG`: the same pipeline, run in the CLI process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cartera.imports import cli
from cartera.settings import Settings
from tests.conftest import TenantClient
from tests.imports.test_imports import DEBTOR, NEW, OLD, ndjson


async def test_cli_import_prints_counts_and_errors(
    tenant: TenantClient, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    path = tmp_path / "portfolio.ndjson"
    path.write_bytes(ndjson(DEBTOR, {**OLD, "original_amount": "1.005"}, NEW))
    code = await cli.run_cli_import(path, tenant.slug, "ndjson", path.stat().st_size)
    out = capsys.readouterr().out
    assert code == 3
    assert "3 rows, 2 applied, 1 rejected" in out
    assert "line 2: original_amount: PEN allows 2 decimal places (too_many_decimals)" in out
    listed: Any = (await tenant.api.get("/v1/imports")).json()["data"]
    assert [(i["status"], i["rows_applied"]) for i in listed] == [("succeeded", 2)]
    job = (await tenant.api.get(f"/v1/jobs/{listed[0]['job_id']}")).json()
    assert (job["status"], job["progress_done"], job["progress_total"]) == ("succeeded", 3, 3)


async def test_cli_import_detects_an_erp_csv_and_prints_warnings(
    tenant: TenantClient, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    path = tmp_path / "cartera.csv"
    path.write_bytes("TYPE;External_Ref;Name;Country;Phone\ndebtor;C-7;Núñez;PE;12\n"
                     .encode("cp1252"))
    code = await cli.run_cli_import(path, tenant.slug, "csv", path.stat().st_size)
    out = capsys.readouterr().out
    assert code == 0
    assert "1 rows, 1 applied, 0 rejected" in out
    assert "line 2: warning: phone: '12' is not a valid phone number" in out
    listed: Any = (await tenant.api.get("/v1/imports")).json()["data"]
    assert (listed[0]["encoding"], listed[0]["delimiter"]) == ("cp1252", ";")
