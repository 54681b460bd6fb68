"""Campaign timing: quiet hours, EventBridge cron (also read by the local Scheduler stand-in) and
the run a fire belongs to.

Pure: clocks are passed in.
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chalicelib.errors import BadRequest

if TYPE_CHECKING:
    from chalicelib.domain.campaigns import QuietHours, Schedule

ONCE = "once"                      # the run id of a one-time (`at`) campaign: every fire of it is the same run


def zone(name: object) -> ZoneInfo:
    """The IANA time zone `name`, or 400 invalid_timezone."""
    if not isinstance(name, str) or not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise BadRequest(f"unknown time zone {name!r}; use an IANA name such as Asia/Shanghai",
                         code="invalid_timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"unknown time zone {name!r}; use an IANA name such as Asia/Shanghai",
                         code="invalid_timezone") from None


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# ---- quiet hours -----------------------------------------------------------------------------

def is_quiet(local: time, quiet: QuietHours | None) -> bool:
    """Whether a wall-clock time falls in [start, end); a window may wrap past midnight."""
    if quiet is None:
        return False
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def next_allowed(now: datetime, tz: str, quiet: QuietHours | None) -> datetime:
    """`now` if it is outside the quiet hours in `tz`, else the first whole minute after they end (UTC).

    The end is a wall-clock time; on a day the clocks jump over it (DST), the window ends when the
    jump happens, since the first minute after the jump is already past the end."""
    zone_ = ZoneInfo(tz)
    local = now.astimezone(zone_)
    if not is_quiet(local.time(), quiet):
        return now
    end_day = local.date()
    if quiet.start > quiet.end and local.time() >= quiet.start:
        end_day += timedelta(days=1)            # wrapped window: it ends tomorrow morning
    candidate = datetime.combine(end_day, quiet.end, tzinfo=zone_).astimezone(timezone.utc)
    # A wall time inside a DST gap maps (fold=0) past the gap; walk back to the jump itself.
    step = timedelta(minutes=1)
    while candidate - step > now and not is_quiet((candidate - step).astimezone(zone_).time(), quiet):
        candidate -= step
    return max(candidate, now)


# ---- EventBridge cron ------------------------------------------------------------------------

_MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
# field name, min, max, names, extra syntax allowed
_CRON_FIELDS = (("minutes", 0, 59, {}), ("hours", 0, 23, {}), ("day-of-month", 1, 31, {}),
                ("month", 1, 12, _MONTHS), ("day-of-week", 1, 7, _DAYS), ("year", 1970, 2199, {}))


@dataclass(frozen=True)
class CronField:
    name: str
    text: str
    values: frozenset = frozenset()     # plain values (after ranges and steps)
    any: bool = False                   # * or ?
    question: bool = False              # ?
    last: bool = False                  # L (day-of-month: last day; day-of-week: Saturday... see below)
    last_weekday: int | None = None     # day-of-week nL: the last weekday n of the month
    nth: tuple[int, int] | None = None  # day-of-week d#n: the n-th weekday d
    nearest_weekday: int | None = None  # day-of-month nW


def _bad_cron(message: str) -> BadRequest:
    return BadRequest(f"schedule.cron: {message}. EventBridge cron has six fields: "
                      "minutes hours day-of-month month day-of-week year, e.g. '0 10 * * ? *'",
                      code="invalid_cron")


def _digits(token: str) -> bool:
    """ASCII digits only: str.isdigit() is also true of '²' (which int() refuses: a 500) and '٢'
    (which int() reads as 2, and which EventBridge would then be handed in the expression)."""
    return token.isascii() and token.isdigit()


def _number(token: str, spec_: tuple) -> int:
    name, low, high, names = spec_
    value = int(token) if _digits(token) else names.get(token.upper()) if token.isascii() else None
    if value is None or not low <= value <= high:
        raise _bad_cron(f"{token!r} is not a valid {name} ({low}-{high})")
    return value


def _cron_field(text: str, index: int) -> CronField:
    spec_ = _CRON_FIELDS[index]
    name, low, high, _names = spec_
    if text == "?":
        if name not in ("day-of-month", "day-of-week"):
            raise _bad_cron(f"'?' is only allowed in day-of-month or day-of-week, not {name}")
        return CronField(name, text, any=True, question=True)
    if name == "day-of-month":
        if text == "L":
            return CronField(name, text, last=True)
        if re.fullmatch(r"[0-9]{1,2}W", text):
            return CronField(name, text, nearest_weekday=_number(text[:-1], spec_))
    if name == "day-of-week":
        if text == "L":
            return CronField(name, text, values=frozenset({7}))      # as in Quartz: L alone is Saturday
        if re.fullmatch(r"[0-9A-Za-z]{1,3}L", text):
            return CronField(name, text, last_weekday=_number(text[:-1], spec_))
        if re.fullmatch(r"[0-9A-Za-z]{1,3}#[1-5]", text):
            day, nth = text.split("#")
            return CronField(name, text, nth=(_number(day, spec_), int(nth)))
    if text == "*":
        return CronField(name, text, any=True)
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise _bad_cron(f"empty list item in {name}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not _digits(step_text) or int(step_text) < 1:
                raise _bad_cron(f"bad step {step_text!r} in {name}")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _number(a, spec_), _number(b, spec_)
            if first > last:
                raise _bad_cron(f"range {base!r} in {name} runs backwards")
        else:
            first = _number(base, spec_)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return CronField(name, text, values=frozenset(values))


def parse_cron(expression: object) -> tuple[CronField, ...]:
    """The six fields of an EventBridge cron expression (with or without `cron( )`), or 400 invalid_cron.
    Exactly one of day-of-month and day-of-week must be '?'."""
    if not isinstance(expression, str) or len(expression) > 256:
        raise _bad_cron("must be a string")
    text = expression.strip()
    if not text.isascii():      # 'frı'.upper() == 'FRI', '٢'.isdigit(): nothing non-ASCII reaches EventBridge
        raise _bad_cron("only ASCII letters, digits, spaces and * ? , - / L W # are allowed")
    if text.startswith("cron(") and text.endswith(")"):
        text = text[5:-1].strip()
    parts = text.split()
    if len(parts) != 6:
        raise _bad_cron(f"found {len(parts)} fields")
    fields = tuple(_cron_field(part, i) for i, part in enumerate(parts))
    if fields[2].question == fields[4].question:
        raise _bad_cron("exactly one of day-of-month and day-of-week must be '?'")
    return fields


def _field_has(f: CronField, value: int) -> bool:
    return f.any or value in f.values


def _day_matches(fields: tuple[CronField, ...], day: date) -> bool:
    _minute, _hour, dom, month, dow, year = fields
    if not (_field_has(year, day.year) and _field_has(month, day.month)):
        return False
    last_day = calendar.monthrange(day.year, day.month)[1]
    if not dom.question:
        if dom.last:
            return day.day == last_day
        if dom.nearest_weekday is not None:
            return day == _nearest_weekday(day.year, day.month, dom.nearest_weekday)
        return _field_has(dom, day.day)
    weekday = (day.isoweekday() % 7) + 1          # EventBridge: 1 = Sunday ... 7 = Saturday
    if dow.last_weekday is not None:
        return weekday == dow.last_weekday and day.day + 7 > last_day
    if dow.nth is not None:
        return weekday == dow.nth[0] and (day.day - 1) // 7 + 1 == dow.nth[1]
    return _field_has(dow, weekday)


def _nearest_weekday(year: int, month: int, target: int) -> date | None:
    last_day = calendar.monthrange(year, month)[1]
    if target > last_day:
        return None
    day = date(year, month, target)
    if day.weekday() == 5:          # Saturday: Friday before, unless that leaves the month
        return day - timedelta(days=1) if target > 1 else day + timedelta(days=2)
    if day.weekday() == 6:          # Sunday: Monday after, unless that leaves the month
        return day + timedelta(days=1) if target < last_day else day - timedelta(days=2)
    return day


def cron_matches(fields: tuple[CronField, ...], local: datetime) -> bool:
    """Whether the cron fires at the wall-clock minute `local`."""
    return (_field_has(fields[0], local.minute) and _field_has(fields[1], local.hour)
            and _day_matches(fields, local.date()))


def next_cron_fire(fields: tuple[CronField, ...], after: datetime, tz: str, *, horizon_days: int = 366 * 5):
    """The first fire strictly after `after` (UTC), or None within the horizon."""
    zone_ = ZoneInfo(tz)
    start = after.astimezone(zone_)
    first_day = start.date()
    if not fields[5].any and min(fields[5].values) > first_day.year:
        first_day = date(min(fields[5].values), 1, 1)       # a year-restricted cron may start years ahead
    minutes = sorted(range(60)) if fields[0].any else sorted(fields[0].values)
    hours = sorted(range(24)) if fields[1].any else sorted(fields[1].values)
    for offset in range(horizon_days + 1):
        day = first_day + timedelta(days=offset)
        if not _day_matches(fields, day):
            continue
        for hour in hours:
            for minute in minutes:
                moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone_)
                # a wall time inside a DST gap does not happen (EventBridge skips it too)
                if moment.astimezone(timezone.utc).astimezone(zone_).replace(tzinfo=None) != moment.replace(tzinfo=None):
                    continue
                if moment.astimezone(timezone.utc) > after:
                    return moment.astimezone(timezone.utc)
    return None


def run_id_for(schedule_: Schedule, scheduled_time: str | None) -> str:
    """The run a fire belongs to: one run for a one-time campaign however often it fires; one per
    scheduled minute for a recurring one (Scheduler's retries repeat the scheduled time)."""
    if not schedule_.recurring:
        return ONCE
    try:
        moment = parse_instant(scheduled_time or "")
    except ValueError:
        raise ValueError(f"a recurring fire needs its scheduled time, got {scheduled_time!r}") from None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
