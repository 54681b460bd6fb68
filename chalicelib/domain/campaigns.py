"""Campaign rules: what a broadcast may be, when it may go out, who gets it, what WeChat's answer means.

Pure: plain data in, plain data out; clocks are passed in. Storage and the workers ask these
functions and commit what they decide; nothing here knows DynamoDB, SQS or HTTP.
"""
from __future__ import annotations

import calendar
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chalicelib.domain import times
from chalicelib.errors import BadRequest, Conflict

CHANNELS = ("mp_subscribe", "oa_template", "oa_custom")
STATES = ("scheduled", "running", "paused", "completed", "cancelled")
# Every skip reason a campaign can report; the stats view lists each, zero or not.
SKIP_REASONS = ("no_credit", "frequency_capped", "unsubscribed", "no_openid", "invalid_openid", "outside_48h",
                "blocked", "response_limit")
ONCE = "once"                      # the fire id of a one-time (`at`) campaign: every fire of it is the same run
MAX_TAGS = 50
MAX_DATA_BYTES = 4096
MIN_SAMPLE_BUCKETS = 1_000_000     # sample_percent resolution: 0.0001 %


# ---- the campaign spec -----------------------------------------------------------------------

@dataclass(frozen=True)
class Audience:
    tags_any: tuple[str, ...] = ()
    tags_all: tuple[str, ...] = ()
    store_ids: tuple[str, ...] = ()
    joined_after: str | None = None        # inclusive, UTC "YYYY-MM-DDTHH:MM:SSZ" (members' joined_at format)
    joined_before: str | None = None       # exclusive
    sample_percent: float = 100.0


@dataclass(frozen=True)
class Message:
    channel: str
    template_id: str | None = None
    page: str | None = None
    data: dict = field(default_factory=dict)   # {"key": {"value": "..."}}, as WeChat takes it
    text: str | None = None                    # oa_custom only


@dataclass(frozen=True)
class Schedule:
    kind: str                              # at | cron
    timezone: str
    at: str | None = None                  # UTC "YYYY-MM-DDTHH:MM:SSZ"
    cron: str | None = None                # the six EventBridge fields, without cron( )

    @property
    def recurring(self) -> bool:
        return self.kind == "cron"

    def expression(self) -> str:
        """The EventBridge Scheduler expression, read in `timezone` (ScheduleExpressionTimezone)."""
        if self.kind == "cron":
            return f"cron({self.cron})"
        local = parse_instant(self.at).astimezone(ZoneInfo(self.timezone))
        return f"at({local.strftime('%Y-%m-%dT%H:%M:%S')})"


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    def as_dict(self) -> dict:
        return {"start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M")}


@dataclass(frozen=True)
class Limits:
    per_second: int | None = None
    frequency_cap_per_day: int | None = None


@dataclass(frozen=True)
class Spec:
    name: str
    audience: Audience
    message: Message
    schedule: Schedule
    limits: Limits
    quiet_hours: QuietHours | None
    coupon_template_id: str | None

    def to_json(self) -> str:
        data = asdict(self)
        data["quiet_hours"] = self.quiet_hours.as_dict() if self.quiet_hours else None
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Spec":
        data = json.loads(text)
        a = data["audience"]
        quiet = data.get("quiet_hours")
        return cls(name=data["name"],
                   audience=Audience(tuple(a["tags_any"]), tuple(a["tags_all"]), tuple(a["store_ids"]),
                                     a["joined_after"], a["joined_before"], float(a["sample_percent"])),
                   message=Message(**data["message"]), schedule=Schedule(**data["schedule"]),
                   limits=Limits(**data["limits"]),
                   quiet_hours=QuietHours(_hhmm(quiet["start"], "start"), _hhmm(quiet["end"], "end")) if quiet else None,
                   coupon_template_id=data.get("coupon_template_id"))

    def view(self) -> dict:
        data = json.loads(self.to_json())
        data["schedule"]["expression"] = self.schedule.expression()
        return data


def spec(body: dict, *, brand_timezone: str, now: datetime) -> Spec:
    """Validate a campaign body, filling sensible defaults (everyone, send at the next minute in the
    brand's time zone, no cap, no quiet hours). Raises BadRequest for what cannot be right."""
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object", code="malformed_json")
    name = body.get("name", "untitled campaign")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise BadRequest("name must be 1-100 characters", code="invalid_name")
    coupon = body.get("coupon_template_id")
    if coupon is not None and (not isinstance(coupon, str) or not coupon or len(coupon) > 64):
        raise BadRequest("coupon_template_id must be a coupon template id", code="invalid_coupon_template_id")
    schedule_body = _section(body, "schedule")
    tz = schedule_body.get("timezone") or brand_timezone
    zone(tz)
    return Spec(name=name.strip(), audience=audience(_section(body, "audience"), tz, now),
                message=message(_section(body, "message")), schedule=schedule(schedule_body, tz, now),
                limits=limits(_section(body, "limits")), quiet_hours=quiet_hours(body.get("quiet_hours")),
                coupon_template_id=coupon)


def _section(body: dict, key: str) -> dict:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{key} must be an object", code=f"invalid_{key}")
    return value


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


def _strings(value: object, field_name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_TAGS or not all(
            isinstance(v, str) and 0 < len(v) <= 64 for v in value):
        raise BadRequest(f"{field_name} must be a list of at most {MAX_TAGS} strings", code=f"invalid_{field_name}")
    return tuple(sorted(set(value)))


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _instant(value: object, field_name: str, tz: str, now: datetime) -> datetime:
    """An ISO 8601 date or date-time inside times.window(now); without an offset it is read in the
    campaign's time zone."""
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{field_name} must be an ISO 8601 date-time", code=f"invalid_{field_name}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{field_name} must be an ISO 8601 date-time, e.g. 2025-06-01T10:00:00+08:00",
                         code=f"invalid_{field_name}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tz))
    problem = times.problem(moment, now)
    if problem:
        raise BadRequest(f"{field_name} {problem}", code=f"invalid_{field_name}")
    return moment


def audience(body: dict, tz: str, now: datetime) -> Audience:
    after = _instant(body["joined_after"], "joined_after", tz, now) if body.get("joined_after") is not None else None
    before = (_instant(body["joined_before"], "joined_before", tz, now) if body.get("joined_before") is not None
              else None)
    if after and before and after >= before:
        raise BadRequest("joined_after must be before joined_before", code="invalid_audience")
    percent = body.get("sample_percent", 100)
    if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 < percent <= 100:
        raise BadRequest("sample_percent must be a number above 0 and at most 100", code="invalid_sample_percent")
    return Audience(tags_any=_strings(body.get("tags_any"), "tags_any"),
                    tags_all=_strings(body.get("tags_all"), "tags_all"),
                    store_ids=_strings(body.get("store_ids"), "store_ids"),
                    joined_after=utc_iso(after) if after else None, joined_before=utc_iso(before) if before else None,
                    sample_percent=float(percent))


def message(body: dict) -> Message:
    channel = body.get("channel", "mp_subscribe")
    if channel not in CHANNELS:
        raise BadRequest(f"message.channel must be one of {', '.join(CHANNELS)}", code="unknown_channel")
    template_id = body.get("template_id")
    if template_id is not None and (not isinstance(template_id, str) or not 0 < len(template_id) <= 128):
        raise BadRequest("message.template_id must be a WeChat template id", code="invalid_template_id")
    if channel in ("mp_subscribe", "oa_template") and not template_id:
        raise BadRequest(f"a {channel} message needs message.template_id", code="missing_template_id")
    page = body.get("page")
    if page is not None and (not isinstance(page, str) or len(page) > 512):
        raise BadRequest("message.page must be a page path", code="invalid_page")
    data = _message_data(body.get("data"))
    text = body.get("text")
    if channel == "oa_custom":
        text = text if text is not None else (data.get("content") or {}).get("value")
        if not isinstance(text, str) or not text.strip() or len(text.encode()) > 2048:
            raise BadRequest("an oa_custom message needs message.text (at most 2 KB)", code="missing_text")
    elif text is not None:
        raise BadRequest("message.text is for oa_custom messages only", code="invalid_text")
    return Message(channel=channel, template_id=template_id, page=page, data=data, text=text)


def _message_data(value: object) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("message.data must be an object of {key: value}", code="invalid_data")
    out = {}
    for key, item in value.items():
        if isinstance(item, dict):
            item = item.get("value")
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise BadRequest(f"message.data.{key} must be a string or {{\"value\": ...}}", code="invalid_data")
        out[str(key)] = {"value": str(item)}
    if len(json.dumps(out, ensure_ascii=False).encode()) > MAX_DATA_BYTES:
        raise BadRequest(f"message.data is limited to {MAX_DATA_BYTES} bytes", code="invalid_data")
    return out


def schedule(body: dict, tz: str, now: datetime) -> Schedule:
    at, cron = body.get("at"), body.get("cron")
    if at is not None and cron is not None:
        raise BadRequest("give schedule.at or schedule.cron, not both", code="invalid_schedule")
    if cron is not None:
        fields = parse_cron(cron)
        if next_cron_fire(fields, now, tz) is None:
            raise BadRequest("schedule.cron never fires", code="invalid_cron")
        return Schedule(kind="cron", timezone=tz, cron=" ".join(f.text for f in fields))
    if at is None:
        # no time given: as soon as the next whole minute
        moment = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    else:
        moment = _instant(at, "at", tz, now)
        if moment < now:
            raise BadRequest(f"schedule.at {at} is in the past", code="at_in_past")
    return Schedule(kind="at", timezone=tz, at=utc_iso(moment))


def limits(body: dict) -> Limits:
    def bounded(key: str, top: int) -> int | None:
        value = body.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise BadRequest(f"limits.{key} must be a whole number from 1 to {top}", code=f"invalid_{key}")
        return value
    return Limits(per_second=bounded("per_second", 10_000), frequency_cap_per_day=bounded("frequency_cap_per_day", 100))


# [0-9], not \d: in a str pattern \d matches every Unicode digit ('٢', '²'), which no caller means.
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


def _hhmm(value: object, name: str) -> time:
    match = _HHMM.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise BadRequest(f"quiet_hours.{name} must be HH:MM (00:00-23:59)", code="invalid_quiet_hours")
    return time(int(match.group(1)), int(match.group(2)))


def quiet_hours(body: object) -> QuietHours | None:
    if body is None:
        return None
    if not isinstance(body, dict):
        raise BadRequest("quiet_hours must be {\"start\": \"22:00\", \"end\": \"08:00\"}", code="invalid_quiet_hours")
    start, end = _hhmm(body.get("start"), "start"), _hhmm(body.get("end"), "end")
    if start == end:
        raise BadRequest("quiet_hours.start and end must differ", code="invalid_quiet_hours")
    return QuietHours(start, end)


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


def fire_id(schedule_: Schedule, scheduled_time: str | None) -> str:
    """The run a fire belongs to: one run for a one-time campaign however often it fires; one per
    scheduled minute for a recurring one (Scheduler's retries repeat the scheduled time)."""
    if not schedule_.recurring:
        return ONCE
    try:
        moment = parse_instant(scheduled_time or "")
    except ValueError:
        raise ValueError(f"a recurring fire needs its scheduled time, got {scheduled_time!r}") from None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


# ---- state machine ---------------------------------------------------------------------------

_ACTIONS = {
    "pause": ("scheduled", "running"),
    "resume": ("paused",),
    "cancel": ("scheduled", "running", "paused"),
}


def transition(state: str, action: str, *, started: bool) -> str:
    """The state after a marketer's `action`; 409 invalid_transition when it cannot apply.
    `started`: a run has begun, so resuming continues it rather than waiting for the schedule."""
    if action not in _ACTIONS:
        raise ValueError(action)
    if state not in _ACTIONS[action]:
        raise Conflict(f"cannot {action} a {state} campaign", code="invalid_transition")
    if action == "pause":
        return "paused"
    if action == "cancel":
        return "cancelled"
    return "running" if started else "scheduled"


def after_run(state: str, recurring: bool) -> str:
    """The campaign's state when a run has delivered to everyone it targeted."""
    if state == "cancelled":
        return state
    if recurring:
        return "paused" if state == "paused" else "scheduled"
    return "completed"


def fire_decision(state: str, current_run: str | None, fire: str) -> str:
    """What a fire of the schedule does: start | continue | park | drop."""
    if state == "scheduled":
        return "continue" if current_run == fire else "start"
    if state == "running":
        # a duplicate fire, or a continuation, of the run in progress; a recurring fire that
        # overlaps a run still in progress is dropped (the next one will come)
        return "continue" if current_run == fire else "drop"
    if state == "paused":
        return "park"
    return "drop"


# ---- audience --------------------------------------------------------------------------------

@dataclass(frozen=True)
class MemberFacts:
    member_id: str
    joined_at: str
    tags: frozenset = frozenset()
    store_ids: frozenset = frozenset()      # the stores of the member's first and last touch


def in_sample(campaign_id: str, member_id: str, percent: float) -> bool:
    """Deterministic pilot sampling: the same member is in or out of a campaign's sample on every
    page, retry and fire; different campaigns sample independently."""
    if percent >= 100:
        return True
    digest = hashlib.sha256(f"{campaign_id}:{member_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % MIN_SAMPLE_BUCKETS < round(percent * MIN_SAMPLE_BUCKETS / 100)


def eligible(campaign_id: str, audience_: Audience, member: MemberFacts) -> bool:
    if audience_.tags_any and not member.tags.intersection(audience_.tags_any):
        return False
    if audience_.tags_all and not member.tags.issuperset(audience_.tags_all):
        return False
    if audience_.store_ids and not member.store_ids.intersection(audience_.store_ids):
        return False
    if audience_.joined_after and member.joined_at < audience_.joined_after:
        return False
    if audience_.joined_before and member.joined_at >= audience_.joined_before:
        return False
    return in_sample(campaign_id, member.member_id, audience_.sample_percent)


def join_range(audience_: Audience) -> tuple[str | None, str | None]:
    """Bounds on the audience index's sort key (`<joined_at>#<member>`) for the join window, so the
    planner reads only that slice of each shard."""
    return audience_.joined_after, audience_.joined_before


# ---- delivery --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipient:
    member_id: str
    mp_openid: str | None = None
    oa_openid: str | None = None
    oa_subscribed: bool | None = None

    def pack(self) -> dict:
        out = {"m": self.member_id}
        if self.mp_openid:
            out["mp"] = self.mp_openid
        if self.oa_openid:
            out["oa"] = self.oa_openid
        if self.oa_subscribed is not None:
            out["s"] = int(self.oa_subscribed)
        return out

    @classmethod
    def unpack(cls, data: dict) -> "Recipient":
        subscribed = data.get("s")
        return cls(data["m"], data.get("mp"), data.get("oa"), None if subscribed is None else bool(subscribed))

    def openid(self, channel: str) -> str | None:
        return self.mp_openid if channel == "mp_subscribe" else self.oa_openid


def precheck(channel: str, recipient: Recipient) -> str | None:
    """A skip reason known before any write: no openid for the channel, or an OA follower who left."""
    if not recipient.openid(channel):
        return "no_openid"
    if channel in ("oa_template", "oa_custom") and recipient.oa_subscribed is False:
        return "unsubscribed"
    return None


def needs_credit(channel: str) -> bool:
    return channel == "mp_subscribe"


def frequency_day(now: datetime, tz: str) -> str:
    """The brand-local calendar day a send counts against for the frequency cap."""
    return now.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d")


def under_cap(count: int, cap: int | None) -> bool:
    return cap is None or count < cap


@dataclass(frozen=True)
class Outcome:
    kind: str                    # sent | retry | token | skip | fail | config
    reason: str | None = None


SENT = Outcome("sent")
OUTCOME_UNKNOWN = "outcome_unknown"

# the one table of WeChat answers (pure), shared with welcome messages and every other caller
from chalicelib.wechat import errors as answers  # noqa: E402 - kept beside its only use in this module

_OUTCOMES = {answers.TRANSIENT: "retry", answers.TOKEN_INVALID: "token", answers.RECIPIENT: "skip",
             answers.REQUEST: "fail", answers.OUTCOME_UNKNOWN: "fail", answers.CONFIG: "config"}


def classify(errcode: int | None, *, api: str | None = None, outcome_unknown: bool = False) -> Outcome:
    """What a WeChat answer means for this recipient (chalicelib.wechat.errors decides): sent;
    retry (WeChat certainly did not act: busy, rate limits, 5xx, no connection); token (refresh
    once, then retry); skip (a permanent answer about this user); fail (a permanent answer about the
    request, or `outcome_unknown`: it may have been delivered, so it is never sent again); config
    (the account is misconfigured: stop sending, keep the recipient for later)."""
    if not errcode and not outcome_unknown:
        return SENT
    verdict = answers.classify(errcode or 0, api=api, outcome_unknown=outcome_unknown)
    return Outcome(_OUTCOMES[verdict.kind], verdict.reason)


def backoff(attempt: int, base: float = 0.2, cap: float = 2.0) -> float:
    """Seconds to wait before retry `attempt` (1-based) of a transient failure; jitter is the caller's."""
    return min(cap, base * 2 ** (attempt - 1))


# ---- stats -----------------------------------------------------------------------------------

def outcome_key(kind: str, reason: str | None) -> str:
    """How an outcome is tallied: sent, skipped:<reason>, failed:<reason>."""
    if kind == "sent":
        return "sent"
    return f"{'skipped' if kind == 'skip' else 'failed'}:{reason or 'unknown'}"


def stats_view(targeted: int, tallies: dict[str, int]) -> dict:
    skipped = {reason: 0 for reason in SKIP_REASONS}
    failed_reasons: dict[str, int] = {}
    sent = 0
    for key, n in tallies.items():
        if key == "sent":
            sent += n
        elif key.startswith("skipped:"):
            skipped[key[8:]] = skipped.get(key[8:], 0) + n
        elif key.startswith("failed:"):
            failed_reasons[key[7:]] = failed_reasons.get(key[7:], 0) + n
    failed = sum(failed_reasons.values())
    return {"targeted": targeted, "sent": sent, "failed": failed, "skipped": skipped,
            "failed_reasons": failed_reasons, "done": sent + failed + sum(skipped.values())}


# ---- subscription credits --------------------------------------------------------------------

# The mini-program reports the popup's answer (POST /me/subscriptions) and WeChat pushes the same
# answer (subscribe_msg_popup_event); a grant from the other source within this window is taken
# as the echo of the one already counted, not a second acceptance.
ECHO_WINDOW_SECONDS = 120
MAX_TEMPLATES = 20


@dataclass(frozen=True)
class SubscriptionChanges:
    accepted: tuple[str, ...] = ()      # one credit each
    rejected: tuple[str, ...] = ()      # no credit; recorded
    revoked: tuple[str, ...] = ()       # the user turned the template off in settings: credits void


def _template_ids(value: object, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_TEMPLATES or not all(
            isinstance(t, str) and 0 < len(t) <= 128 for t in value):
        raise BadRequest(f"{name} must be a list of at most {MAX_TEMPLATES} template ids", code=f"invalid_{name}")
    return tuple(dict.fromkeys(value))


def subscription_request(body: dict) -> SubscriptionChanges:
    """What `wx.requestSubscribeMessage` answered, as the mini-program reports it."""
    accepted, rejected = _template_ids(body.get("accepted"), "accepted"), _template_ids(body.get("rejected"), "rejected")
    if not accepted and not rejected:
        raise BadRequest("give accepted and/or rejected template ids", code="missing_templates")
    if set(accepted) & set(rejected):
        raise BadRequest("a template cannot be both accepted and rejected", code="invalid_templates")
    return SubscriptionChanges(accepted=accepted, rejected=rejected)


SUBSCRIPTION_EVENTS = ("subscribe_msg_popup_event", "subscribe_msg_change_event")


def subscription_changes(msg: dict) -> SubscriptionChanges:
    """Read a subscribe_msg_popup_event / subscribe_msg_change_event. JSON pushes put `List` at the
    top, XML nests it in SubscribeMsgPopupEvent / SubscribeMsgChangeEvent; either way `List` is an
    object for one template and an array for several."""
    event = str(msg.get("Event", "")).lower()
    wrapper = msg.get("SubscribeMsgPopupEvent") if event == "subscribe_msg_popup_event" else msg.get(
        "SubscribeMsgChangeEvent")
    entries = (wrapper.get("List") if isinstance(wrapper, dict) else None) or msg.get("List") or []
    if isinstance(entries, dict):
        entries = [entries]
    accepted, rejected, revoked = [], [], []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        template, status = entry.get("TemplateId"), entry.get("SubscribeStatusString")
        if not isinstance(template, str) or not isinstance(status, str):
            continue                    # an element with children or a JSON object is no template id
        template, status = template.strip(), status.strip().lower()
        if not template or len(template) > 128:
            continue
        if event == "subscribe_msg_popup_event":
            (accepted if status == "accept" else rejected).append(template)
        elif status in ("reject", "ban"):
            revoked.append(template)
        # a change event's "accept" turns notifications back on but grants no one-time credit
    return SubscriptionChanges(tuple(dict.fromkeys(accepted)), tuple(dict.fromkeys(rejected)),
                               tuple(dict.fromkeys(revoked)))

