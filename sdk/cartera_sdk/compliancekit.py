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
* **Pack**: :class:`RulePack`, the judging skeleton the shipped packs fill in.

.. versionadded:: 0.1.1
"""

from __future__ import annotations

import re
import unicodedata
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


@dataclass(frozen=True)
class HoursRule:
    """Open when every zone's local time is inside ``hours`` and not a holiday there."""

    hours: WeeklyHours
    calendar: HolidayCalendar
    zones: tuple[ZoneInfo, ...]
    reasons: Reasons
    _earliest: dict[datetime, datetime | None] = field(
        default_factory=dict, compare=False, repr=False, hash=False)

    def earliest(self, at: datetime) -> datetime | None:
        """:func:`earliest_lawful` for this rule alone, memoised per UTC minute: windows
        open on whole local minutes (every zone here has a whole-minute offset), so every
        instant of one minute has the same answer unless it is open itself."""
        minute = at.astimezone(UTC).replace(second=0, microsecond=0)
        if minute not in self._earliest:
            if len(self._earliest) > 100_000:
                self._earliest.clear()
            self._earliest[minute] = _search(minute, [self])
        found = self._earliest[minute]
        return at.astimezone(UTC) if found == minute else found

    def closed_reason(self, at: datetime) -> Reason | None:
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

    def openings(self, start: datetime, end: datetime) -> Iterator[datetime]:
        for zone in self.zones:
            day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
            while day <= last:
                for s, _e in self.hours.days.get(day.weekday(), ()):
                    yield from wall_openings(day, time(s // 60, s % 60), zone)
                day += _DAY


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
    if len(rules) == 1 and isinstance(rules[0], HoursRule):
        return rules[0].earliest(at)
    return _search(at, rules, horizon)


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
    inside = sorted(c.at for c in _made_before(contact, keep)
                    if c.at > contact.planned_at - window)
    if len(inside) < limit:
        return None
    return NotBefore(instant=inside[len(inside) - limit] + window, reason=reason)


def spacing(contact: PlannedContact, zone: ZoneInfo, days: int, reason: Reason,
            keep: Callable[[PriorContact], bool] = lambda _c: True) -> NotBefore | None:
    """Kept contacts at least ``days`` local calendar days apart (``days=3``: Tuesday, then
    Friday at the earliest)."""
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
        self._hours_rules: dict[tuple[Any, ...], HoursRule] = {}
        self._versions = {"pack_version": self.version, "calendar_version": CALENDAR_VERSION}

    # -- contract -------------------------------------------------------------
    def rules(self) -> list[RuleDescription]:
        return list(self._rules.values())

    def calendar(self, year: int, subdivision: str | None = None) -> list[Holiday]:
        return HolidayCalendar(self.country, subdivision).holidays(year)

    def judge(self, contact: PlannedContact, config: Any) -> ContactVerdict:
        self.validate(contact)
        versions = self._versions
        denied = self.denials(contact, config)
        if denied:
            return Deny(reasons=denied, **versions)
        rules = self.time_rules(contact, config)
        at = contact.planned_at
        closed = [r for rule in rules if (r := rule.closed_reason(at)) is not None]
        if not closed:
            return Allow(reasons=self.allowed(contact, config), **versions)
        until = earliest_lawful(contact.planned_at, rules)
        if until is None:
            return Deny(reasons=[*closed, self.reason("no_lawful_instant")], **versions)
        zone = ZoneInfo(contact.debtor_timezone)
        return Defer(until=_in_zone(until, zone), reasons=closed, **versions)

    # -- for subclasses -------------------------------------------------------
    def denials(self, contact: PlannedContact, config: Any) -> list[Reason]:
        """Reasons the contact must not happen at all (empty: it may, at some time)."""
        return []

    def time_rules(self, contact: PlannedContact, config: Any) -> list[TimeRule]:
        """Hour windows and caps; the contact is deferred while any is closed."""
        return []

    def allowed(self, contact: PlannedContact, config: Any) -> list[Reason]:
        """Reasons given with an allow (override to cite what was checked)."""
        return [self.reason("allowed")]

    # -- helpers --------------------------------------------------------------
    def reason(self, code: str, detail: str | None = None) -> Reason:
        """A :class:`Reason` for a listed rule, citing its legal reference."""
        key = (code, detail or "")
        found = self._reasons.get(key)
        if found is None:
            rule = self._rules[code]
            message = rule.title if detail is None else f"{rule.title}: {detail}"
            found = Reason(code=code, message=message, rule_ref=rule.legal_ref)
            self._reasons[key] = found
        return found

    def validate(self, contact: PlannedContact) -> None:
        """Refuse contacts the pack cannot judge (wrong country, zone, subdivision)."""
        if contact.debtor_country != self.country:
            raise InvalidContact("debtor_country",
                                 f"{contact.debtor_country!r} is not {self.country}")
        if contact.timezone_known and contact.debtor_timezone not in self.timezones:
            raise InvalidContact("debtor_timezone",
                                 f"{contact.debtor_timezone!r} is not a zone of {self.country}")
        known = self.subdivisions if self.subdivisions is not None else \
            holiday_subdivisions(self.country)
        if contact.debtor_subdivision is not None and contact.debtor_subdivision not in known:
            raise InvalidContact("debtor_subdivision",
                                 f"{contact.debtor_subdivision!r} is not a subdivision of "
                                 f"{self.country}")

    def zones(self, contact: PlannedContact) -> tuple[ZoneInfo, ...]:
        """The debtor's zone, or every zone of the country when it is not known."""
        return (ZoneInfo(contact.debtor_timezone),) if contact.timezone_known else self._zones

    def primary_zone(self, contact: PlannedContact) -> ZoneInfo:
        return self.zones(contact)[0]

    def hours_rule(self, contact: PlannedContact, config: PackConfig, hours: WeeklyHours,
                   codes: tuple[str, str, str] = ("outside_hours", "closed_day",
                                                  "public_holiday")) -> HoursRule:
        """``hours`` narrowed by ``config``, on the debtor's calendar, as a rule (built once
        per windows, subdivision, zone and config: judging a portfolio reuses it)."""
        zone_key = contact.debtor_timezone if contact.timezone_known else None
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
