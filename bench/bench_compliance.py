"""Verdicts per second of the shipped country packs (pure, in-process, one core).

    .venv/bin/python bench/bench_compliance.py [--contacts 200000]

For each pack: a portfolio-like stream of planned SMS contacts spread over a week (most in
hours, some at night, weekends and holidays) on precomputed calendars, judged with the
pack's default config after a warm-up; prints the median of 5 runs, and the share of
verdicts that were allows.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median
from cartera_compliance_ar import ArgentinaPack
from cartera_compliance_br import BrazilPack
from cartera_compliance_cl import ChilePack
from cartera_compliance_co import ColombiaPack
from cartera_compliance_mx import MexicoPack
from cartera_compliance_pe import PeruPack
from cartera_sdk import Allow, PlannedContact

CASES = [(PeruPack(), "America/Lima", None), (MexicoPack(), "America/Mexico_City", None),
         (ColombiaPack(), "America/Bogota", None), (ChilePack(), "America/Santiago", "CL-RM"),
         (ArgentinaPack(), "America/Argentina/Buenos_Aires", "AR-C"),
         (BrazilPack(), "America/Sao_Paulo", "BR-SP")]
START = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)


def contacts(pack: object, tz: str, sub: str | None, n: int) -> list[PlannedContact]:
    extra = {"authorized_channels": ["sms"]} if getattr(pack, "country", "") == "CO" else {}
    return [PlannedContact(channel="sms", planned_at=START + timedelta(minutes=(i * 37) % 10080),
                           debtor_country=pack.country,  # type: ignore[attr-defined]
                           debtor_timezone=tz, debtor_subdivision=sub, **extra)  # type: ignore[arg-type]
            for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=200_000)
    args = parser.parse_args()
    for pack, tz, sub in CASES:
        batch = contacts(pack, tz, sub, args.contacts)
        config = pack.Config()
        for c in batch[:2000]:
            pack.judge(c, config)
        runs = []
        for _ in range(5):
            began = time.perf_counter()
            verdicts = [pack.judge(c, config) for c in batch]
            runs.append(time.perf_counter() - began)
        allowed = sum(isinstance(v, Allow) for v in verdicts) / len(verdicts)
        print(f"{pack.country}: {len(batch) / median(runs):,.0f} verdicts/s "
              f"({allowed:.0%} allowed)")


if __name__ == "__main__":
    main()
