"""Files as ERPs export them (cp1252, `;`, decimal commas, any header case), NUL characters
and bad bytes as row errors, and invalid optional fields as row warnings."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import TenantClient
from tests.imports.test_imports import (
    DEBTOR,
    OLD,
    PAYMENT,
    RunJobs,
    debtor_by_ref,
    ndjson,
    obligations,
    upload,
)


async def problems_of(t: TenantClient, import_id: int) -> list[tuple[Any, ...]]:
    body = (await t.api.get(f"/v1/imports/{import_id}/errors", params={"limit": 100})).json()
    return [(e["line"], e["field"], e["code"], e["severity"]) for e in body["data"]]


async def imported(t: TenantClient, run_jobs: RunJobs, body: bytes,
                   content_type: str = "text/csv", **params: Any) -> dict[str, Any]:
    created = await upload(t, body, content_type, **params)
    await run_jobs()
    return dict((await t.api.get(f"/v1/imports/{created['id']}")).json())


ERP_CSV = (
    "Type ; External_Ref;NAME;Country;Debtor_External_Ref;Kind;Currency;Original_Amount;"
    "Due_Date;Attributes.Sucursal\r\n"
    "debtor;C-1;José Núñez Peña;PE;;;;;;Cañete\r\n"
    "obligation;F-1;;;C-1;invoice;PEN;1.234,56;2025-01-31;\r\n"
    "obligation;F-2;;;C-1;invoice;PEN;7,5;2025-02-28;\r\n"
)


async def test_a_cp1252_semicolon_file_with_decimal_commas_is_detected(
    tenant: TenantClient, run_jobs: RunJobs,
) -> None:
    done = await imported(tenant, run_jobs, ERP_CSV.encode("cp1252"))
    assert (done["status"], done["rows_applied"], done["rows_failed"]) == ("succeeded", 3, 0)
    assert (done["encoding"], done["delimiter"], done["decimal_mark"]) == ("cp1252", ";", ",")
    debtor = await debtor_by_ref(tenant, "C-1")
    assert debtor is not None
    assert debtor["name"] == "José Núñez Peña"
    assert debtor["attributes"] == {"Sucursal": "Cañete"}
    found = await obligations(tenant)
    assert (found["F-1"]["original_amount"], found["F-2"]["original_amount"]) == (
        "1234.56", "7.50")


async def test_the_reading_can_be_given(tenant: TenantClient, run_jobs: RunJobs) -> None:
    body = ERP_CSV.replace(";", "|").encode("latin-1")
    done = await imported(tenant, run_jobs, body, encoding="latin-1", delimiter="|",
                          decimal_mark=",")
    assert (done["status"], done["rows_applied"]) == ("succeeded", 3)
    assert (done["encoding"], done["delimiter"], done["decimal_mark"]) == ("latin-1", "|", ",")
    assert (await obligations(tenant))["F-1"]["original_amount"] == "1234.56"


@pytest.mark.parametrize(("params", "content_type", "param"), [
    ({"encoding": "ebcdic"}, "text/csv", "encoding"),
    ({"delimiter": "x"}, "text/csv", "delimiter"),
    ({"decimal_mark": "'"}, "text/csv", "decimal_mark"),
    ({"delimiter": ";"}, "application/x-ndjson", "delimiter"),
])
async def test_invalid_reading_parameters_are_422_naming_them(
    tenant: TenantClient, params: dict[str, str], content_type: str, param: str,
) -> None:
    r = await tenant.api.post("/v1/imports", content=b"type\ndebtor\n", params=params,
                              headers={"Content-Type": content_type})
    assert r.status_code == 422, r.text
    assert r.json()["param"] == param


async def test_a_cp1252_line_past_the_lookahead_is_a_row_error_at_its_line(
    tenant: TenantClient, run_jobs: RunJobs, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("cartera.imports.rows.LOOKAHEAD_BYTES", 64)
    lines = ["type,external_ref,name,country"] + [
        f"debtor,C-{i},Ana Pérez,PE" for i in range(1, 6)]
    body = ("\n".join(lines) + "\n").encode()
    body += "debtor,C-9,José Núñez,PE\n".encode("cp1252")
    body += b"debtor,C-10,Luis,PE\n"
    done = await imported(tenant, run_jobs, body)
    assert (done["status"], done["encoding"]) == ("succeeded", "utf-8")
    assert (done["rows_applied"], done["rows_failed"]) == (6, 1)
    assert await problems_of(tenant, done["id"]) == [(7, "name", "invalid_encoding", "error")]
    assert await debtor_by_ref(tenant, "C-10") is not None


async def test_a_latin_ndjson_file_is_read(tenant: TenantClient, run_jobs: RunJobs) -> None:
    body = ('{"type":"debtor","external_ref":"C-1","name":"Iñigo Ñúñez","country":"PE"}\n'
            .encode("cp1252"))
    done = await imported(tenant, run_jobs, body, "application/x-ndjson")
    assert (done["status"], done["rows_applied"], done["encoding"]) == ("succeeded", 1, "cp1252")
    debtor = await debtor_by_ref(tenant, "C-1")
    assert debtor is not None and debtor["name"] == "Iñigo Ñúñez"


async def test_a_nul_character_is_a_row_error_at_its_line_and_field(
    tenant: TenantClient, run_jobs: RunJobs,
) -> None:
    body = (b"type,external_ref,name,country,zone\n"
            b"debtor,C-1,Ana,PE,Lima\n"
            b"debtor,C-2,Be\x00to,PE,\n"
            b"debtor,C-3,Carla,PE,Cusco\n")
    done = await imported(tenant, run_jobs, body)
    assert (done["status"], done["rows_applied"], done["rows_failed"]) == ("succeeded", 2, 1)
    assert await problems_of(tenant, done["id"]) == [(3, "name", "nul_character", "error")]
    assert await debtor_by_ref(tenant, "C-3") is not None
    nd = ndjson({**DEBTOR, "external_ref": "C-4", "zone": "Li\x00ma"},
                {**DEBTOR, "external_ref": "C-5"})
    done = await imported(tenant, run_jobs, nd, "application/x-ndjson")
    assert (done["status"], done["rows_applied"], done["rows_failed"]) == ("succeeded", 1, 1)
    assert await problems_of(tenant, done["id"]) == [(1, "zone", "nul_character", "error")]


async def test_an_invalid_optional_field_is_a_warning_and_the_row_is_kept(
    tenant: TenantClient, run_jobs: RunJobs,
) -> None:
    body = ndjson(
        {**DEBTOR, "tags": ["ok", "not ok"], "subdivision": "nowhere",
         "contact_points": [{"kind": "phone", "value": "12"},
                            {"kind": "email", "value": "ana@example.pe"}]},
        {**OLD, "issue_date": "2099-01-01"},
        PAYMENT,
        {**DEBTOR, "external_ref": "C-2", "country": "XX"},   # required: the row is rejected
        {**DEBTOR, "external_ref": "C-3", "name": "   "},     # blank name: rejected
    )
    done = await imported(tenant, run_jobs, body, "application/x-ndjson")
    assert (done["status"], done["rows_applied"], done["rows_failed"]) == ("succeeded", 3, 2)
    assert await problems_of(tenant, done["id"]) == [
        (1, "tags[1]", "wrong_type", "warning"),
        (1, "subdivision", "invalid_subdivision", "warning"),
        (1, "contact_points[0].value", "invalid_phone", "warning"),
        (2, "issue_date", "issue_after_due", "warning"),
        (4, "country", "invalid_country", "error"),
        (5, "name", "blank_name", "error"),
    ]
    debtor = await debtor_by_ref(tenant, "C-1")
    assert debtor is not None and debtor["tags"] == ["ok"] and debtor["subdivision"] is None
    assert [c["kind"] for c in debtor["contact_points"]] == ["email"]
    found = await obligations(tenant)
    assert (found["F-OLD"]["status"], found["F-OLD"]["issue_date"]) == ("paid", None)


async def test_csv_warnings_name_the_column(tenant: TenantClient, run_jobs: RunJobs) -> None:
    body = (b"type,external_ref,name,country,phone,email,risk_score\n"
            b"debtor,C-1,Ana,PE,12,ana@example.pe,9999\n")
    done = await imported(tenant, run_jobs, body)
    assert (done["rows_applied"], done["rows_failed"]) == (1, 0)
    assert await problems_of(tenant, done["id"]) == [
        (2, "risk_score", "wrong_type", "warning"), (2, "phone", "invalid_phone", "warning")]
    debtor = await debtor_by_ref(tenant, "C-1")
    assert debtor is not None and debtor["risk_score"] is None
    assert [c["kind"] for c in debtor["contact_points"]] == ["email"]
