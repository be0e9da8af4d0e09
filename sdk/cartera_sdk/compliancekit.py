"""Building blocks for compliance packs, so country packs share one tested implementation.

* **Local time**: :func:`to_instant` maps a local wall-clock time to the first instant the
  clock shows it (the earlier of two when ambiguous, the end of the gap when it does not
  exist); :func:`wall_openings` gives every instant the clock *enters* a wall time.
* **Windows**: :class:`WeeklyHours` (half-open ``[start, end)`` local windows per weekday,
  closed on holidays) and :class:`HoursRule` (one or several zones: with several, the
  intersection, for a debtor whose zone is unknown among the country's).
* **Holidays**: :class:`HolidayCalendar` over the pinned ``holidays`` package, national
  plus the ISO 3166-2 subdivision's, plus a tenant's extra days.
* **Earliest lawful instant**: :func:`earliest_lawful` over :class:`TimeRule` objects
  (hours, :class:`NotBefore` releases of frequency caps). Every rule lists the instants at
  which it may open, so the first candidate where all are open is exactly the minimum.
* **Caps**: :func:`calendar_cap`, :func:`rolling_cap`, :func:`spacing` count the contacts
  actually made (``PlannedContact.recent_contacts``), never the one being judged.
* **Content**: :func:`normalise` and :func:`findings` (accent- and case-insensitive
  patterns).
* **Config**: :class:`PackConfig`, whose ``legal_limits`` refuse a tenant value looser
  than the law, naming the field (:class:`LooserThanLaw`).
* **Pack**: :class:`RulePack`, the judging skeleton the shipped packs fill in
  (:meth:`RulePack.judge_many` for a portfolio, :meth:`RulePack.judge_reference`, the
  plain reading the precomputed calendars are tested against).

.. versionadded:: 0.1.1
.. versionchanged:: 1.1.0 precomputed calendars (:data:`CHUNK_SECONDS`),
   ``judge_many``, ``judge_reference``; a guessed zone outside the country is refused.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from importlib.metadata import version as _package_version
from typing import Annotated, Any, ClassVar, Literal, Protocol
from zoneinfo import ZoneInfo

import holidays as _holidays
import msgspec

from .compliance import (
    Allow,
    BaseCompliancePack,
    ChargeFinding,
    ChargeKind,
    ContactChannel,
    ContactVerdict,
    Defer,
    Deny,
    Holiday,
    InvalidContact,
    PlannedContact,
    PriorContact,
    Reason,
    RecipientRole,
    RuleDescription,
    Verification,
)
from .money import Money

__all__ = [
    "ALL_CHANNELS",
    "CALENDAR_VERSION",
    "CHUNK_SECONDS",
    "CONTENT_CODES",
    "COURT_DOCUMENT_ES",
    "COURT_DOCUMENT_PT",
    "KIT_RULES",
    "MESSAGE_CHANNELS",
    "THREATS_ES",
    "THREATS_PT",
    "AtLeast",
    "AtMost",
    "Floor",
    "HolidayCalendar",
    "HoursRule",
    "LegalLimit",
    "LooserThanLaw",
    "MustBe",
    "NotBefore",
    "PackConfig",
    "RulePack",
    "TimeRule",
    "WeeklyHours",
    "calendar_cap",
    "earliest_lawful",
    "findings",
    "is_direct",
    "mentions",
    "normalise",
    "period_start",
    "rolling_cap",
    "rule",
    "spacing",
    "to_instant",
    "wall_openings",
]

CALENDAR_VERSION = f"holidays {_package_version('holidays')}"
ALL_CHANNELS: frozenset[ContactChannel] = frozenset(
    {"whatsapp", "sms", "email", "voice", "letter", "visit"}
)
MESSAGE_CHANNELS: frozenset[ContactChannel] = frozenset({"whatsapp", "sms", "email"})
_SECOND = timedelta(seconds=1)
_DAY = timedelta(days=1)
#: How far ahead :func:`earliest_lawful` looks (long holiday runs plus a capped week).
HORIZON = timedelta(days=40)

# --------------------------------------------------------------------------- local time


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    # Through UTC: astimezone() to an instant's own tzinfo returns it unchanged, even when
    # its wall time does not exist there.
    return instant.astimezone(UTC).astimezone(zone).replace(tzinfo=None)


def _in_zone(instant: datetime, zone: ZoneInfo) -> datetime:
    if instant.tzinfo is not zone:
        return instant.astimezone(zone)
    return instant.astimezone(UTC).astimezone(zone)


def to_instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The first instant (in ``zone``) whose local wall clock shows ``day`` ``wall`` or
    later: the earlier instant when the wall time is ambiguous, the end of the gap when it
    does not exist (a DST spring-forward)."""
    naive = datetime.combine(day, wall)
    early = naive.replace(tzinfo=zone, fold=0)
    if _wall(early, zone) == naive:
        return _in_zone(early, zone)
    # In a gap: fold=1 maps before the transition, fold=0 after; bisect to the transition.
    lo = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    hi = early.astimezone(UTC)
    while hi - lo > _SECOND:
        mid = lo + (hi - lo) / 2
        if _wall(mid, zone) >= naive:
            hi = mid
        else:
            lo = mid
    return _in_zone(hi.replace(microsecond=0), zone)


@lru_cache(maxsize=65536)
def wall_openings(day: date, wall: time, zone: ZoneInfo) -> tuple[datetime, ...]:
    """Every instant at which the clock of ``zone`` reaches ``day`` ``wall`` (two when the
    wall time repeats at a fall-back, the gap's end when it does not exist)."""
    first = to_instant(day, wall, zone)
    naive = datetime.combine(day, wall)
    second = naive.replace(tzinfo=zone, fold=1)
    if _wall(second, zone) == naive and second.utcoffset() != first.utcoffset():
        return (first, _in_zone(second, zone))
    return (first,)


def period_start(day: date, period: Literal["day", "week"]) -> date:
    """The first local day of ``day``'s calendar day or ISO week (Monday)."""
    return day if period == "day" else day - timedelta(days=day.weekday())


# --------------------------------------------------------------------------- holidays


@lru_cache(maxsize=512)
def _holidays_of(country: str, subdiv: str | None, year: int) -> dict[date, str]:
    found = _holidays.country_holidays(country, subdiv=subdiv, years=year)
    return {d: str(n) for d, n in sorted(found.items())}


@lru_cache(maxsize=64)
def holiday_subdivisions(country: str) -> frozenset[str]:
    """ISO 3166-2 codes (``BR-SP``) the ``holidays`` package has regional days for."""
    known = _holidays.country_holidays(country).subdivisions
    return frozenset(f"{country}-{s}" for s in known if re.fullmatch(r"[A-Z0-9]{1,3}", s))


@dataclass(frozen=True)
class HolidayCalendar:
    """National holidays of ``country``, plus those of ``subdivision`` (ISO 3166-2, when
    the ``holidays`` package knows it) and a tenant's ``extra`` days."""

    country: str
    subdivision: str | None = None
    extra: frozenset[date] = frozenset()
    _days: dict[int, frozenset[date]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def version(self) -> str:
        return CALENDAR_VERSION

    def _subdiv(self) -> str | None:
        if self.subdivision and self.subdivision in holiday_subdivisions(self.country):
            return self.subdivision.split("-", 1)[1]
        return None

    def holidays(self, year: int) -> list[Holiday]:
        national = _holidays_of(self.country, None, year)
        regional = _holidays_of(self.country, self._subdiv(), year) if self._subdiv() else {}
        out = [Holiday(date=d, name=n) for d, n in national.items()]
        out += [Holiday(date=d, name=n, subdivision=self.subdivision)
                for d, n in regional.items() if d not in national]
        out += [Holiday(date=d, name="tenant holiday") for d in sorted(self.extra)
                if d.year == year and d not in national and d not in regional]
        return sorted(out, key=lambda h: h.date)

    def is_holiday(self, day: date) -> bool:
        days = self._days.get(day.year)
        if days is None:
            days = frozenset(h.date for h in self.holidays(day.year))
            self._days[day.year] = days
        return day in days


# --------------------------------------------------------------------------- windows

Minutes = tuple[int, int]


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True)
class WeeklyHours:
    """Lawful local windows per weekday (0 Monday ... 6 Sunday) as half-open minute ranges
    ``[start, end)``; a weekday absent is closed; holidays closed unless told otherwise."""

    days: dict[int, tuple[Minutes, ...]]
    closed_on_holidays: bool = True

    @classmethod
    def of(cls, spec: dict[Iterable[int] | int, tuple[str, str]],
           closed_on_holidays: bool = True) -> WeeklyHours:
        """``WeeklyHours.of({range(5): ("07:00", "20:00"), 5: ("08:00", "15:00")})``."""
        days: dict[int, tuple[Minutes, ...]] = {}
        for weekdays, (start, end) in spec.items():
            for wd in [weekdays] if isinstance(weekdays, int) else weekdays:
                days[wd] = (*days.get(wd, ()), (_minutes(start), _minutes(end)))
        return cls(days=days, closed_on_holidays=closed_on_holidays)

    def narrowed(self, config: PackConfig) -> WeeklyHours:
        """These windows cut down by a tenant's :class:`PackConfig` (never widened)."""
        lo = 0 if config.not_before is None else config.not_before.hour * 60 + \
            config.not_before.minute
        hi = 1440 if config.not_after is None else config.not_after.hour * 60 + \
            config.not_after.minute
        days = {
            wd: tuple((max(s, lo), min(e, hi)) for s, e in spans if max(s, lo) < min(e, hi))
            for wd, spans in self.days.items() if wd not in config.closed_weekdays
        }
        return WeeklyHours({wd: s for wd, s in days.items() if s},
                           self.closed_on_holidays or config.closed_on_holidays)

    def describe(self) -> str:
        names = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
        parts = [f"{names[wd]} " + ", ".join(f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:"
                                              f"{e % 60:02d}" for s, e in spans)
                 for wd, spans in sorted(self.days.items())]
        return "; ".join(parts) + ("; closed on holidays" if self.closed_on_holidays else "")


class TimeRule(Protocol):
    """A constraint on the instant of a contact."""

    def closed_reason(self, at: datetime) -> Reason | None:
        """``None`` when open at ``at``, else why not."""

    def openings(self, start: datetime, end: datetime) -> Iterable[datetime]:
        """Every instant in ``[start, end]`` at which the rule may become open."""


@dataclass(frozen=True)
class Reasons:
    """The reasons an :class:`HoursRule` gives: outside the window, closed weekday, holiday."""

    outside_hours: Reason
    closed_day: Reason
    holiday: Reason


#: Seconds of UTC time one precomputed timeline chunk covers (30 days).
CHUNK_SECONDS = 30 * 86_400
_HORIZON_SECONDS = HORIZON.total_seconds()


@dataclass(frozen=True)
class _Chunk:
    """The state of an :class:`HoursRule` over ``[start, start + CHUNK_SECONDS)``: segment
    ``i`` starts at ``starts[i]`` (epoch seconds) and is closed for ``reasons[i]`` (``None``
    open) until the next; ``next_open[i]`` is the index of the first open segment at or
    after ``i`` (``-1``: none in this chunk)."""

    starts: list[int]
    reasons: list[Reason | None]
    next_open: list[int]


@dataclass(frozen=True)
class HoursRule:
    """Open when every zone's local time is inside ``hours`` and not a holiday there.

    Judging reads a precomputed calendar: per 30-day chunk of UTC time, the sorted
    instants at which the rule's state can change (every local midnight, window start and
    end of every zone, each zone's offset changes) with the state just after each one,
    computed once by :meth:`reference_closed_reason` (the plain wall-clock reading). Between
    two such instants the state is constant, so :meth:`closed_reason` is one bisection and
    :meth:`earliest` a lookup."""

    hours: WeeklyHours
    calendar: HolidayCalendar
    zones: tuple[ZoneInfo, ...]
    reasons: Reasons
    _chunks: dict[int, _Chunk] = field(
        default_factory=dict, compare=False, repr=False, hash=False)

    def earliest(self, at: datetime, horizon: timedelta = HORIZON) -> datetime | None:
        """:func:`earliest_lawful` for this rule alone (``None`` beyond ``horizon``)."""
        ts = at.timestamp()
        found = self._earliest_ts(ts, ts + horizon.total_seconds())
        if found is None:
            return None
        if found == ts:
            return at.astimezone(UTC)
        return datetime.fromtimestamp(found, UTC)

    def _earliest_ts(self, ts: float, limit: float) -> float | None:
        k = int(ts // CHUNK_SECONDS)
        chunk = self._chunks.get(k) or self._chunk(k)
        i = bisect_right(chunk.starts, ts) - 1
        if chunk.reasons[i] is None:
            return ts
        return self._next_open(chunk, k, i, limit)

    def _next_open(self, chunk: _Chunk, k: int, i: int, limit: float) -> int | None:
        """The start of the first open segment after segment ``i`` of chunk ``k``."""
        j = chunk.next_open[i]
        while j < 0:
            k += 1
            if k * CHUNK_SECONDS > limit:
                return None
            chunk = self._chunks.get(k) or self._chunk(k)
            j = chunk.next_open[0]
        found = chunk.starts[j]
        return found if found <= limit else None

    def closed_reason(self, at: datetime) -> Reason | None:
        ts = at.timestamp()
        k = int(ts // CHUNK_SECONDS)
        chunk = self._chunks.get(k) or self._chunk(k)
        return chunk.reasons[bisect_right(chunk.starts, ts) - 1]

    def reference_closed_reason(self, at: datetime) -> Reason | None:
        """The plain reading: each zone's local date and minute at ``at`` against the
        windows and the calendar (what the precomputed calendar is built from)."""
        for zone in self.zones:
            local = _in_zone(at, zone)
            if self.hours.closed_on_holidays and self.calendar.is_holiday(local.date()):
                return self.reasons.holiday
            spans = self.hours.days.get(local.weekday())
            if not spans:
                return self.reasons.closed_day
            minute = local.hour * 60 + local.minute
            if not any(s <= minute < e for s, e in spans):
                return self.reasons.outside_hours
        return None

    def _chunk(self, k: int) -> _Chunk:
        if len(self._chunks) > 256:
            self._chunks.clear()
        start, end = k * CHUNK_SECONDS, (k + 1) * CHUNK_SECONDS
        first = datetime.fromtimestamp(start, UTC)
        last = datetime.fromtimestamp(end, UTC)
        instants = {start}
        for zone in self.zones:
            instants.update(_state_changes(self.hours, zone, first, last))
        starts: list[int] = []
        reasons: list[Reason | None] = []
        for ts in sorted(u for u in instants if start <= u < end):
            reason = self.reference_closed_reason(datetime.fromtimestamp(ts, UTC))
            if reasons and reasons[-1] == reason:
                continue
            starts.append(ts)
            reasons.append(reason)
        next_open = [-1] * len(starts)
        following = -1
        for i in range(len(starts) - 1, -1, -1):
            if reasons[i] is None:
                following = i
            next_open[i] = following
        chunk = _Chunk(starts, reasons, next_open)
        self._chunks[k] = chunk
        return chunk

    def openings(self, start: datetime, end: datetime) -> Iterator[datetime]:
        for zone in self.zones:
            day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
            while day <= last:
                for s, _e in self.hours.days.get(day.weekday(), ()):
                    yield from wall_openings(day, time(s // 60, s % 60), zone)
                day += _DAY


def _epoch(instant: datetime) -> int:
    return int(instant.timestamp())


def _state_changes(hours: WeeklyHours, zone: ZoneInfo, first: datetime,
                   last: datetime) -> set[int]:
    """Every instant in about ``[first, last]`` at which an hours rule in ``zone`` may
    change state: the clock entering each local midnight and each window's start and end
    (both times when a fall-back repeats it, the gap's end when it is skipped), and each
    change of the zone's UTC offset (the clock jumps)."""
    out: set[int] = set()
    day = first.astimezone(zone).date() - _DAY
    stop = last.astimezone(zone).date() + _DAY
    edges = sorted({m for spans in hours.days.values() for s, e in spans
                    for m in (s, e) if 0 < m < 1440})
    midnight = to_instant(day, time(0), zone)
    while day <= stop:
        out.update(_epoch(u) for u in wall_openings(day, time(0), zone))
        for m in edges:
            out.update(_epoch(u) for u in wall_openings(day, time(m // 60, m % 60), zone))
        nxt = to_instant(day + _DAY, time(0), zone)
        out.update(_transitions(midnight, nxt, zone))
        midnight = nxt
        day += _DAY
    return out


def _transitions(lo: datetime, hi: datetime, zone: ZoneInfo) -> list[int]:
    """The instants (whole seconds) in ``(lo, hi]`` at which ``zone``'s offset changes
    (probed hourly, then bisected)."""
    out = []
    a = lo.astimezone(UTC)
    end = hi.astimezone(UTC)
    while a < end:
        b = min(a + timedelta(hours=1), end)
        if a.astimezone(zone).utcoffset() != b.astimezone(zone).utcoffset():
            x, y = a, b
            while y - x > _SECOND:
                mid = x + (y - x) / 2
                if mid.astimezone(zone).utcoffset() == x.astimezone(zone).utcoffset():
                    x = mid
                else:
                    y = mid
            out.append(_epoch(y))  # the change is on a whole second in (x, y]
        a = b
    return out


@dataclass(frozen=True)
class NotBefore:
    """Closed until ``instant`` (a frequency cap's release)."""

    instant: datetime
    reason: Reason

    def closed_reason(self, at: datetime) -> Reason | None:
        return None if at.astimezone(UTC) >= self.instant.astimezone(UTC) else self.reason

    def openings(self, start: datetime, end: datetime) -> tuple[datetime, ...]:
        return (self.instant,)


def earliest_lawful(at: datetime, rules: Sequence[TimeRule],
                    horizon: timedelta = HORIZON) -> datetime | None:
    """The first instant ``>= at`` at which every rule is open (``None`` beyond
    ``horizon``). Exact: the answer is ``at`` or an instant where some rule opens.
    Instants are compared in UTC (same-zone aware datetimes compare by wall time)."""
    hours = None
    releases: list[NotBefore] = []
    for r in rules:
        if type(r) is NotBefore:
            releases.append(r)
        elif type(r) is HoursRule and hours is None:
            hours = r
        else:  # another kind of rule: the general search
            return _search(at, rules, horizon)
    # Releases only open, once: the answer is the hours' first opening at or after the
    # latest release (or ``at``).
    ts = at.timestamp()
    limit = ts + horizon.total_seconds()
    start, source = ts, at
    for release in releases:
        released = release.instant.timestamp()
        if released > start:
            start, source = released, release.instant
    if start > limit:
        return None
    found = start if hours is None else hours._earliest_ts(start, limit)
    if found is None:
        return None
    if found == start:
        return source.astimezone(UTC)
    return datetime.fromtimestamp(found, UTC)


def _search(at: datetime, rules: Sequence[TimeRule],
            horizon: timedelta = HORIZON) -> datetime | None:
    at = at.astimezone(UTC)
    if all(r.closed_reason(at) is None for r in rules):
        return at
    start = at
    for days in (3, 10, horizon.days):  # look near first: most defers end within a day
        end = min(at + timedelta(days=days), at + horizon)
        candidates = sorted({u for r in rules for c in r.openings(start, end)
                             if start < (u := c.astimezone(UTC)) <= end})
        for candidate in candidates:
            if all(r.closed_reason(candidate) is None for r in rules):
                return candidate
        start = end
    return None


# --------------------------------------------------------------------------- caps

DIRECT_OUTCOMES = frozenset({"answered", "completed", "replied", "delivered", "read"})


def is_direct(contact: PriorContact, mode: Literal["delivered", "any_attempt"]) -> bool:
    """Whether a made contact counts as a direct one: ``delivered`` (an answered call, a
    reply, a delivered or read message) or every attempt (``any_attempt``)."""
    return mode == "any_attempt" or contact.direct or contact.outcome in DIRECT_OUTCOMES


def _made_before(contact: PlannedContact,
                 keep: Callable[[PriorContact], bool]) -> list[PriorContact]:
    return [c for c in contact.recent_contacts if c.at < contact.planned_at and keep(c)]


def calendar_cap(contact: PlannedContact, zone: ZoneInfo, limit: int,
                 period: Literal["day", "week"], reason: Reason,
                 keep: Callable[[PriorContact], bool] = lambda _c: True) -> NotBefore | None:
    """At most ``limit`` kept contacts per local calendar day or ISO week: when reached,
    closed until the next period starts (local midnight, DST-safe)."""
    if limit > 0 and not contact.recent_contacts:
        return None
    current = period_start(contact.planned_at.astimezone(zone).date(), period)
    made = [c for c in _made_before(contact, keep)
            if period_start(c.at.astimezone(zone).date(), period) == current]
    if len(made) < limit:
        return None
    nxt = current + (_DAY if period == "day" else timedelta(days=7))
    return NotBefore(instant=to_instant(nxt, time(0), zone), reason=reason)


def rolling_cap(contact: PlannedContact, limit: int, window: timedelta, reason: Reason,
                keep: Callable[[PriorContact], bool] = lambda _c: True) -> NotBefore | None:
    """At most ``limit`` kept contacts in any ``window`` (a contact made at ``t`` stops
    counting at ``t + window``)."""
    if limit > 0 and not contact.recent_contacts:
        return None
    inside = sorted(c.at for c in _made_before(contact, keep)
                    if c.at > contact.planned_at - window)
    if len(inside) < limit:
        return None
    return NotBefore(instant=inside[len(inside) - limit] + window, reason=reason)


def spacing(contact: PlannedContact, zone: ZoneInfo, days: int, reason: Reason,
            keep: Callable[[PriorContact], bool] = lambda _c: True) -> NotBefore | None:
    """Kept contacts at least ``days`` local calendar days apart (``days=3``: Tuesday, then
    Friday at the earliest)."""
    if not contact.recent_contacts:
        return None
    made = _made_before(contact, keep)
    if not made:
        return None
    first_day = max(c.at for c in made).astimezone(zone).date() + timedelta(days=days)
    if contact.planned_at.astimezone(zone).date() >= first_day:
        return None
    return NotBefore(instant=to_instant(first_day, time(0), zone), reason=reason)


# --------------------------------------------------------------------------- content


def normalise(text: str) -> str:
    """Lower case, accents removed, whitespace collapsed: what content patterns match."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"\s+", " ", plain)


def findings(text: str, patterns: Iterable[re.Pattern[str]]) -> list[str]:
    """The snippets of ``text`` (normalised) that match any pattern."""
    plain = normalise(text)
    return [m.group(0) for p in patterns for m in [p.search(plain)] if m]


def _patterns(*sources: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(src) for src in sources)


#: What makes a message look like a court document (Spanish, normalised text).
COURT_DOCUMENT_ES = _patterns(
    r"\b(juzgado|tribunal|poder judicial|corte superior|magistrad[oa])\b",
    r"\b(notificacion|cedula|citacion|resolucion|mandamiento|requerimiento|demanda|"
    r"escrito|actuacion|diligencia|sentencia|orden) judicial\b",
    r"\bexpediente (judicial|n\.?|no\.?|nro\.?|numero)\b",
    r"\borden de (embargo|captura|detencion|arresto|aprehension|lanzamiento|desalojo)\b",
    r"\b(emplazamiento|por mandato judicial|secretario judicial|juez)\b",
)
#: Threats the laws forbid: jail, police, telling family, employer or neighbours, shaming.
THREATS_ES = _patterns(
    r"\b(carcel|prision|denuncia penal|antecedentes penales|policia|delito de)\b",
    r"\bsabemos donde (vive|vives|trabaja|trabajas)\b",
    r"\b(avisaremos|informaremos|comunicaremos|contactaremos|visitaremos|llamaremos) a "
    r"(su|tu|sus|tus) (familia|familiares|empleador|jefe|trabajo|vecinos|referencias)\b",
    r"\b(su|tu|sus|tus) (familia|familiares|empleador|jefe|vecinos) (se enterara|sabra|"
    r"se enteraran|sabran)\b",
    r"\b(publicaremos|exhibiremos|difundiremos) (su|tu) (nombre|deuda|foto)\b",
    r"\blistas? (negra|de morosos|de deudores)\b",
)
#: Portuguese equivalents (Brazil).
COURT_DOCUMENT_PT = _patterns(
    r"\b(tribunal|juiz|juizo|vara civel|poder judiciario|oficial de justica)\b",
    r"\b(intimacao|citacao|notificacao|mandado) (judicial|de penhora|de citacao)\b",
    r"\bprocesso (judicial|n\.?|no\.?|numero)\b",
    r"\bmandado de\b",
)
THREATS_PT = _patterns(
    r"\b(prisao|cadeia|policia|delegacia|boletim de ocorrencia|estelionato)\b",
    r"\b(avisaremos|informaremos|ligaremos para|contataremos) (a |o )?(sua|seu|seus|suas) "
    r"(familia|familiares|empregador|chefe|vizinhos|trabalho)\b",
    r"\b(sua|seu|seus|suas) (familia|familiares|empregador|chefe|vizinhos) (vai|vao|"
    r"sabera|saberao|ficara|ficarao)\b",
    r"\bvamos (expor|divulgar|publicar)\b",
    r"\b(lista negra|lista de devedores|caloteir[oa]s?)\b",
)


def mentions(text: str, needle: str | None) -> bool:
    """Whether ``needle`` (a creditor's name, a tax id) appears in ``text``, ignoring
    case, accents, spacing and, for digits, punctuation (``20.123.456/0001-99``)."""
    if not needle:
        return False
    plain, wanted = normalise(text), normalise(needle)
    if wanted in plain:
        return True
    digits = re.sub(r"\D", "", needle)
    return len(digits) >= 8 and digits in re.sub(r"\D", "", text)


# --------------------------------------------------------------------------- config


class LooserThanLaw(ValueError):
    """A tenant config that would loosen a legal limit; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"looser_than_law:{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Floor:
    """``field`` (a set) must keep every member of ``required``."""

    field: str
    required: frozenset[str]
    legal_ref: str

    def problem(self, value: Any) -> str | None:
        missing = self.required - set(value)
        return (f"must include {sorted(missing)} ({self.legal_ref})" if missing else None)


@dataclass(frozen=True)
class AtMost:
    field: str
    limit: int
    legal_ref: str

    def problem(self, value: Any) -> str | None:
        return f"must be at most {self.limit} ({self.legal_ref})" if value > self.limit else None


@dataclass(frozen=True)
class AtLeast:
    field: str
    limit: int
    legal_ref: str

    def problem(self, value: Any) -> str | None:
        return f"must be at least {self.limit} ({self.legal_ref})" if value < self.limit else None


@dataclass(frozen=True)
class MustBe:
    field: str
    value: Any
    legal_ref: str

    def problem(self, value: Any) -> str | None:
        return None if value == self.value else f"must be {self.value!r} ({self.legal_ref})"


LegalLimit = Floor | AtMost | AtLeast | MustBe
Weekday = Annotated[int, msgspec.Meta(ge=0, le=6)]


class PackConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What every pack's tenant config holds. The knobs here only narrow (later start,
    earlier end, more closed weekdays, extra holidays); a pack's own flags declare their
    legal bounds in ``legal_limits`` and a config past them is refused with the field
    named (:class:`LooserThanLaw`, a ``ValueError``: msgspec reports it on decode)."""

    not_before: time | None = None
    not_after: time | None = None
    closed_weekdays: frozenset[Weekday] = frozenset()
    closed_on_holidays: bool = False
    extra_holidays: frozenset[date] = frozenset()

    legal_limits: ClassVar[tuple[LegalLimit, ...]] = ()

    def __post_init__(self) -> None:
        for limit in type(self).legal_limits:
            problem = limit.problem(getattr(self, limit.field))
            if problem:
                raise LooserThanLaw(limit.field, problem)


# --------------------------------------------------------------------------- the pack


def rule(code: str, title: str, legal_ref: str, description: str,
         verification: Verification = "verified", configurable: bool = False
         ) -> RuleDescription:
    """A :class:`RuleDescription`, positionally (packs list many)."""
    return RuleDescription(code=code, title=title, description=description,
                           legal_ref=legal_ref, verification=verification,
                           configurable=configurable)


KIT_RULES = (
    RuleDescription(
        code="no_lawful_instant",
        title="No lawful instant soon",
        description="No instant in the next 40 days satisfies every hour window and cap; "
                    "the contact is denied rather than deferred indefinitely.",
    ),
)
#: Reason codes the shipped packs give for what a message says (not when or to whom).
CONTENT_CODES = frozenset({
    "court_document_lookalike", "threat", "creditor_name_missing", "authority_impersonation",
    "asks_reason_for_default", "first_contact_disclosure_missing",
    "creditor_identification_missing", "bureau_threat", "agency_identification_missing",
})
OBLIGORS: frozenset[RecipientRole] = frozenset({"debtor", "co_debtor", "guarantor"})


class RulePack(BaseCompliancePack):
    """The judging skeleton: input checks, denials, then time rules (hours and caps).

    Subclasses set ``name``, ``country``, ``version``, ``timezones`` (IANA zones of the
    country), optionally ``subdivisions`` (ISO 3166-2; default the ``holidays`` ones),
    ``RULES`` (every reason code, with its legal reference), and implement
    :meth:`denials` and :meth:`time_rules`. Reasons are built with :meth:`reason`, which
    takes the legal reference from the rule, so an unlisted code fails loudly.
    """

    version: ClassVar[str]
    timezones: ClassVar[tuple[str, ...]]
    subdivisions: ClassVar[frozenset[str] | None] = None
    RULES: ClassVar[tuple[RuleDescription, ...]]

    def __init__(self) -> None:
        self._rules = {r.code: r for r in (*self.RULES, *KIT_RULES)}
        self._zones = tuple(ZoneInfo(z) for z in self.timezones)
        self._reasons: dict[tuple[str, str], Reason] = {}
        self._plain_reasons: dict[str, Reason] = {}
        self._hours_rules: dict[tuple[Any, ...], HoursRule] = {}
        self._versions = {"pack_version": self.version, "calendar_version": CALENDAR_VERSION}
        self._zone_names = frozenset(self.timezones)
        self._known_subdivisions = (self.subdivisions if self.subdivisions is not None
                                    else holiday_subdivisions(self.country))
        self._by_identity: dict[tuple[Any, ...], tuple[Any, WeeklyHours, HoursRule]] = {}
        self._allowed = self.reason("allowed") if "allowed" in self._rules else None

    # -- contract -------------------------------------------------------------
    def rules(self) -> list[RuleDescription]:
        return list(self._rules.values())

    def calendar(self, year: int, subdivision: str | None = None) -> list[Holiday]:
        return HolidayCalendar(self.country, subdivision).holidays(year)

    def judge(self, contact: PlannedContact, config: Any) -> ContactVerdict:
        self.validate(contact)
        denied = self.denials(contact, config)
        if denied:
            return Deny(reasons=denied, pack_version=self.version,
                        calendar_version=CALENDAR_VERSION)
        rules = self.time_rules(contact, config)
        at = contact.planned_at
        if len(rules) == 1 and type(rules[0]) is HoursRule:  # the common case, inlined
            hours = rules[0]
            ts = at.timestamp()
            k = int(ts // CHUNK_SECONDS)
            chunk = hours._chunks.get(k) or hours._chunk(k)
            i = bisect_right(chunk.starts, ts) - 1
            reason = chunk.reasons[i]
            if reason is None:
                return Allow(reasons=self.allowed(contact, config),
                             pack_version=self.version, calendar_version=CALENDAR_VERSION)
            found = hours._next_open(chunk, k, i, ts + _HORIZON_SECONDS)
            if found is None:
                return Deny(reasons=[reason, self.reason("no_lawful_instant")],
                            pack_version=self.version, calendar_version=CALENDAR_VERSION)
            return Defer(until=_local(found, contact.debtor_timezone), reasons=[reason],
                         pack_version=self.version, calendar_version=CALENDAR_VERSION)
        closed = [r for rule in rules if (r := rule.closed_reason(at)) is not None]
        if not closed:
            return Allow(reasons=self.allowed(contact, config), pack_version=self.version,
                         calendar_version=CALENDAR_VERSION)
        until = earliest_lawful(at, rules)
        if until is None:
            return Deny(reasons=[*closed, self.reason("no_lawful_instant")],
                        pack_version=self.version, calendar_version=CALENDAR_VERSION)
        return Defer(until=_in_zone(until, _zone(contact.debtor_timezone)), reasons=closed,
                     pack_version=self.version, calendar_version=CALENDAR_VERSION)

    def judge_many(self, contacts: Iterable[PlannedContact], config: Any
                   ) -> list[ContactVerdict]:
        """:meth:`judge` for many contacts with one config (a planner's portfolio): the
        same verdicts, in order; an invalid contact raises as in :meth:`judge`."""
        judge = self.judge
        return [judge(c, config) for c in contacts]

    def judge_reference(self, contact: PlannedContact, config: Any) -> ContactVerdict:
        """:meth:`judge` without the precomputed calendars: every hours rule read on the
        wall clock and the earliest lawful instant found by the general search. Slow; what
        the fast path is tested against."""
        self.validate(contact)
        denied = self.denials(contact, config)
        if denied:
            return Deny(reasons=denied, **self._versions)
        rules = [_Plain(r) if isinstance(r, HoursRule) else r
                 for r in self.time_rules(contact, config)]
        at = contact.planned_at
        closed = [r for rule in rules if (r := rule.closed_reason(at)) is not None]
        if not closed:
            return Allow(reasons=self.allowed(contact, config), **self._versions)
        until = _search(at, rules)
        if until is None:
            return Deny(reasons=[*closed, self.reason("no_lawful_instant")], **self._versions)
        return Defer(until=_in_zone(until, ZoneInfo(contact.debtor_timezone)), reasons=closed,
                     **self._versions)

    # -- for subclasses -------------------------------------------------------
    def denials(self, contact: PlannedContact, config: Any) -> list[Reason]:
        """Reasons the contact must not happen at all (empty: it may, at some time)."""
        return []

    def time_rules(self, contact: PlannedContact, config: Any) -> list[TimeRule]:
        """Hour windows and caps; the contact is deferred while any is closed."""
        return []

    def allowed(self, contact: PlannedContact, config: Any) -> list[Reason]:
        """Reasons given with an allow (override to cite what was checked)."""
        return [self._allowed] if self._allowed is not None else [self.reason("allowed")]

    # -- helpers --------------------------------------------------------------
    def reason(self, code: str, detail: str | None = None) -> Reason:
        """A :class:`Reason` for a listed rule, citing its legal reference."""
        if detail is None:
            plain = self._plain_reasons.get(code)
            if plain is not None:
                return plain
        key = (code, detail or "")
        found = self._reasons.get(key)
        if found is None:
            rule = self._rules[code]
            message = rule.title if detail is None else f"{rule.title}: {detail}"
            found = Reason(code=code, message=message, rule_ref=rule.legal_ref)
            self._reasons[key] = found
            if detail is None:
                self._plain_reasons[code] = found
        return found

    def validate(self, contact: PlannedContact) -> None:
        """Refuse contacts the pack cannot judge (wrong country, zone, subdivision)."""
        if contact.debtor_country != self.country:
            raise InvalidContact("debtor_country",
                                 f"{contact.debtor_country!r} is not {self.country}")
        # Even a guessed zone (``timezone_known=False``) must be one of the country's: the
        # verdict's instants are given in it.
        if contact.debtor_timezone not in self._zone_names:
            raise InvalidContact("debtor_timezone",
                                 f"{contact.debtor_timezone!r} is not a zone of {self.country}")
        sub = contact.debtor_subdivision
        if sub is not None and sub not in self._known_subdivisions:
            raise InvalidContact("debtor_subdivision",
                                 f"{sub!r} is not a subdivision of {self.country}")

    def zones(self, contact: PlannedContact) -> tuple[ZoneInfo, ...]:
        """The debtor's zone, or every zone of the country when it is not known."""
        return (_zone(contact.debtor_timezone),) if contact.timezone_known else self._zones

    def primary_zone(self, contact: PlannedContact) -> ZoneInfo:
        return _zone(contact.debtor_timezone) if contact.timezone_known else self._zones[0]

    def hours_rule(self, contact: PlannedContact, config: PackConfig, hours: WeeklyHours,
                   codes: tuple[str, str, str] = ("outside_hours", "closed_day",
                                                  "public_holiday")) -> HoursRule:
        """``hours`` narrowed by ``config``, on the debtor's calendar, as a rule (built once
        per windows, subdivision, zone and config: judging a portfolio reuses it)."""
        zone_key = contact.debtor_timezone if contact.timezone_known else None
        # First by identity (the same config object judging a portfolio: no hashing of
        # the config), then by value.
        fast = (id(hours), contact.debtor_subdivision, zone_key, id(config), codes)
        hit = self._by_identity.get(fast)
        if hit is not None and hit[0] is config and hit[1] is hours:
            return hit[2]
        key = (_ByIdentity(hours), contact.debtor_subdivision, zone_key, config, codes)
        built = self._hours_rules.get(key)
        if built is None:
            if len(self._hours_rules) > 4096:
                self._hours_rules.clear()
            calendar = _calendar(self.country, contact.debtor_subdivision,
                                 config.extra_holidays)
            built = HoursRule(hours=_narrowed(hours, config), calendar=calendar,
                              zones=self.zones(contact),
                              reasons=Reasons(*(self.reason(c) for c in codes)))
            self._hours_rules[key] = built
        if len(self._by_identity) > 4096:
            self._by_identity.clear()
        self._by_identity[fast] = (config, hours, built)  # held: their ids stay theirs
        return built

    def content_denials(self, contact: PlannedContact,
                        court: Sequence[re.Pattern[str]] = COURT_DOCUMENT_ES,
                        threats: Sequence[re.Pattern[str]] = THREATS_ES) -> list[Reason]:
        """``court_document_lookalike``, ``threat`` and, on an agency's notice or formal
        letter that omits the creditor, ``creditor_name_missing`` (codes the pack lists)."""
        if contact.content is None:
            return []
        text = f"{contact.content.subject or ''} {contact.content.text}"
        out = []
        found = findings(text, court)
        if found:
            out.append(self.reason("court_document_lookalike", ", ".join(found)))
        found = findings(text, threats)
        if found:
            out.append(self.reason("threat", ", ".join(found)))
        creditor = contact.creditor
        if (creditor is not None and creditor.agency_name
                and contact.content.kind in ("notice", "formal_letter")
                and not mentions(text, creditor.name)):
            out.append(self.reason("creditor_name_missing", creditor.name))
        return out

    def finding(self, kind: ChargeKind, allowed: bool, code: str, detail: str | None = None,
                *, max_amount: Money | None = None, lawful_from: date | None = None
                ) -> ChargeFinding:
        """A :class:`ChargeFinding` whose reason cites the listed rule ``code``."""
        return ChargeFinding(kind=kind, allowed=allowed, reason=self.reason(code, detail),
                             max_amount=max_amount, lawful_from=lawful_from)

    def role_denial(self, contact: PlannedContact, allowed: frozenset[str],
                    code: str = "third_party_forbidden") -> list[Reason]:
        if contact.recipient_role in allowed:
            return []
        return [self.reason(code, f"recipient role {contact.recipient_role}")]


class _Plain:
    """An :class:`HoursRule` read on the wall clock (:meth:`RulePack.judge_reference`)."""

    def __init__(self, rule: HoursRule) -> None:
        self.rule = rule

    def closed_reason(self, at: datetime) -> Reason | None:
        return self.rule.reference_closed_reason(at)

    def openings(self, start: datetime, end: datetime) -> Iterator[datetime]:
        return self.rule.openings(start, end)


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=65536)
def _local(ts: int, zone: str) -> datetime:
    """The instant ``ts`` (epoch seconds, a window opening) in the IANA ``zone``."""
    return datetime.fromtimestamp(ts, _zone(zone))


@lru_cache(maxsize=1024)
def _calendar(country: str, subdivision: str | None, extra: frozenset[date]) -> HolidayCalendar:
    return HolidayCalendar(country, subdivision, extra)


class _ByIdentity:
    """Hashes a :class:`WeeklyHours` (a dict inside) by identity: packs keep theirs as
    module constants, so this caches one narrowed copy per (windows, config)."""

    __slots__ = ("value",)

    def __init__(self, value: WeeklyHours) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.value is self.value


@lru_cache(maxsize=1024)
def _narrowed_cached(hours: _ByIdentity, config: PackConfig) -> WeeklyHours:
    return hours.value.narrowed(config)


def _narrowed(hours: WeeklyHours, config: PackConfig) -> WeeklyHours:
    if (config.not_before is None and config.not_after is None and not config.closed_weekdays
            and not config.closed_on_holidays):
        return hours
    return _narrowed_cached(_ByIdentity(hours), config)
