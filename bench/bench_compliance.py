"""Verdicts per second of the shipped country packs (pure, in-process, one core).

    .venv/bin/python bench/bench_compliance.py [--contacts 200000] [--runs 5]

For each pack: a portfolio-like stream of planned SMS contacts spread over a week (most in
hours, some at night, weekends and holidays), judged with the pack's default config after
a warm-up that precomputes the calendars. Three figures per pack, each the median of the
runs:

* ``hours``: the hour/holiday rule alone on its precomputed calendar (``closed_reason``
  and, when closed, ``earliest``), what the issue's per-core target is about;
* ``judge``: the full ``pack.judge`` (input checks, denials, caps, the verdict struct);
* ``judge_many``: the set-wise entry over the whole stream.

Each figure is given per CPU second of this process (``process_time``: what one core
does, even on a machine other work loads) and per wall second. Also prints the share of
allows and the load average, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
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
from cartera_sdk.compliancekit import HoursRule, RulePack

CASES: list[tuple[RulePack, str, str | None]] = [
    (PeruPack(), "America/Lima", None), (MexicoPack(), "America/Mexico_City", None),
    (ColombiaPack(), "America/Bogota", None), (ChilePack(), "America/Santiago", "CL-RM"),
    (ArgentinaPack(), "America/Argentina/Buenos_Aires", "AR-C"),
    (BrazilPack(), "America/Sao_Paulo", "BR-SP")]
START = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)


def contacts(pack: RulePack, tz: str, sub: str | None, n: int) -> list[PlannedContact]:
    extra = {"authorized_channels": ["sms"]} if pack.country == "CO" else {}
    return [PlannedContact(channel="sms", planned_at=START + timedelta(minutes=(i * 37) % 10080),
                           debtor_country=pack.country, debtor_timezone=tz,
                           debtor_subdivision=sub, **extra)  # type: ignore[arg-type]
            for i in range(n)]


def timed(work: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median CPU seconds and median wall seconds of ``runs`` calls of ``work``."""
    cpu, wall = [], []
    for _ in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        work()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return median(cpu), median(wall)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} cores)")
    print("pack  hours/s (cpu | wall)       judge/s (cpu | wall)      "
          "judge_many/s (cpu | wall)   allowed")
    for pack, tz, sub in CASES:
        batch = contacts(pack, tz, sub, args.contacts)
        config = pack.Config()
        instants = [c.planned_at for c in batch]
        found = [r for r in pack.time_rules(batch[0], config) if isinstance(r, HoursRule)]
        rule = found[0]
        for c in batch[:5000]:  # warm-up: builds the calendars of the stream's weeks
            pack.judge(c, config)

        def hours(rule: HoursRule = rule, instants: list[datetime] = instants) -> None:
            closed, earliest = rule.closed_reason, rule.earliest
            for at in instants:
                if closed(at) is not None:
                    earliest(at)

        def judge(pack: RulePack = pack, batch: list[PlannedContact] = batch,
                  config: object = config) -> list[object]:
            j = pack.judge
            return [j(c, config) for c in batch]  # kept, as judge_many keeps them

        def many(pack: RulePack = pack, batch: list[PlannedContact] = batch,
                 config: object = config) -> None:
            pack.judge_many(batch, config)

        n = len(batch)
        figures = [timed(work, args.runs) for work in (hours, judge, many)]
        verdicts = pack.judge_many(batch, config)
        allowed = sum(isinstance(v, Allow) for v in verdicts) / n
        cells = "  ".join(f"{n / cpu:>10,.0f} | {n / wall:>10,.0f}" for cpu, wall in figures)
        print(f"{pack.country:<4}  {cells}   {allowed:.0%}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
