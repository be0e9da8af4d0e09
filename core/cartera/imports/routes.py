"""HTTP routes: /v1/imports (placeholder controller; the ingestion pipeline lands here)."""

from __future__ import annotations

from litestar import Controller


class ImportController(Controller):
    path = "/v1/imports"
    tags = ["Imports"]
