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
from chalicelib.errors import BadRequest

# The campaign's timing, run and subscribe credits live in their own modules (split from this one);
# their names stay importable from here so `rules.X` keeps reading the same across the code.
from chalicelib.domain.campaign_runs import *  # noqa: F401,F403,E402
from chalicelib.domain.campaign_runs import SKIP_REASONS  # noqa: F401,E402
from chalicelib.domain.campaign_schedule import *  # noqa: F401,F403,E402
from chalicelib.domain.campaign_schedule import ONCE, next_cron_fire, parse_cron, parse_instant, utc_iso, zone  # noqa: F401,E402
from chalicelib.domain.subscriptions import *  # noqa: F401,F403,E402

MEDIA = ("mp_subscribe", "oa_template", "oa_custom")
STATES = ("scheduled", "running", "paused", "completed", "cancelled")
MAX_TAGS = 50
MAX_DATA_BYTES = 4096
MIN_SAMPLE_BUCKETS = 1_000_000     # sample_percent resolution: 0.0001 %
DEFAULT_HOLDOUT_PERCENT = 5        # every campaign keeps a control group unless told otherwise
MAX_HOLDOUT_PERCENT = 50
DEFAULT_ATTRIBUTION_DAYS = 7
MAX_ATTRIBUTION_DAYS = 30


# ---- the campaign spec -----------------------------------------------------------------------

@dataclass(frozen=True)
class Audience:
    tags_any: tuple[str, ...] = ()
    tags_all: tuple[str, ...] = ()
    store_ids: tuple[str, ...] = ()
    joined_after: str | None = None        # inclusive, UTC "YYYY-MM-DDTHH:MM:SSZ" (members' joined_at format)
    joined_before: str | None = None       # exclusive
    sample_percent: float = 100.0
    holdout_percent: float = 5.0           # reachable members held out (planned, not sent): DEFAULT_HOLDOUT_PERCENT


@dataclass(frozen=True)
class Message:
    medium: str
    template_id: str | None = None
    page: str | None = None
    data: dict = field(default_factory=dict)   # {"key": {"value": "..."}}, as WeChat takes it
    text: str | None = None                    # oa_custom only


def _stored_message(data: dict) -> Message:
    """A stored spec's message; specs stored before the rename call the medium `channel`."""
    if "channel" in data:
        data = {("medium" if k == "channel" else k): v for k, v in data.items()}
    return Message(**data)


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
    attribution_days: int = DEFAULT_ATTRIBUTION_DAYS     # orders this long after the message count for it

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
                                     a["joined_after"], a["joined_before"], float(a["sample_percent"]),
                                     float(a.get("holdout_percent", 0.0))),      # campaigns stored before: none
                   message=_stored_message(data["message"]), schedule=Schedule(**data["schedule"]),
                   limits=Limits(**data["limits"]),
                   quiet_hours=QuietHours(_hhmm(quiet["start"], "start"), _hhmm(quiet["end"], "end")) if quiet else None,
                   coupon_template_id=data.get("coupon_template_id"),
                   attribution_days=int(data.get("attribution_days", DEFAULT_ATTRIBUTION_DAYS)))

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
                coupon_template_id=coupon, attribution_days=attribution_days(body.get("attribution_days")))


def attribution_days(value: object) -> int:
    if value is None:
        return DEFAULT_ATTRIBUTION_DAYS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTRIBUTION_DAYS:
        raise BadRequest(f"attribution_days must be a whole number from 1 to {MAX_ATTRIBUTION_DAYS}",
                         code="invalid_attribution_days")
    return value


def _section(body: dict, key: str) -> dict:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{key} must be an object", code=f"invalid_{key}")
    return value


def _strings(value: object, field_name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_TAGS or not all(
            isinstance(v, str) and 0 < len(v) <= 64 for v in value):
        raise BadRequest(f"{field_name} must be a list of at most {MAX_TAGS} strings", code=f"invalid_{field_name}")
    return tuple(sorted(set(value)))


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
    holdout = body.get("holdout_percent", DEFAULT_HOLDOUT_PERCENT)
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 <= holdout <= MAX_HOLDOUT_PERCENT:
        raise BadRequest(f"holdout_percent must be a number from 0 to {MAX_HOLDOUT_PERCENT}",
                         code="invalid_holdout_percent")
    return Audience(tags_any=_strings(body.get("tags_any"), "tags_any"),
                    tags_all=_strings(body.get("tags_all"), "tags_all"),
                    store_ids=_strings(body.get("store_ids"), "store_ids"),
                    joined_after=utc_iso(after) if after else None, joined_before=utc_iso(before) if before else None,
                    sample_percent=float(percent), holdout_percent=float(holdout))


def message(body: dict) -> Message:
    medium = body.get("medium", body.get("channel", "mp_subscribe"))    # `channel`: its name before
    if "channel" in body and "medium" in body and body["channel"] != body["medium"]:
        raise BadRequest("message.channel is the old name of message.medium: give one", code="conflicting_medium")
    if medium not in MEDIA:
        raise BadRequest(f"message.medium must be one of {', '.join(MEDIA)}", code="unknown_medium")
    template_id = body.get("template_id")
    if template_id is not None and (not isinstance(template_id, str) or not 0 < len(template_id) <= 128):
        raise BadRequest("message.template_id must be a WeChat template id", code="invalid_template_id")
    if medium in ("mp_subscribe", "oa_template") and not template_id:
        raise BadRequest(f"a {medium} message needs message.template_id", code="missing_template_id")
    page = body.get("page")
    if page is not None and (not isinstance(page, str) or len(page) > 512):
        raise BadRequest("message.page must be a page path", code="invalid_page")
    data = _message_data(body.get("data"))
    text = body.get("text")
    if medium == "oa_custom":
        text = text if text is not None else (data.get("content") or {}).get("value")
        if not isinstance(text, str) or not text.strip() or len(text.encode()) > 2048:
            raise BadRequest("an oa_custom message needs message.text (at most 2 KB)", code="missing_text")
    elif text is not None:
        raise BadRequest("message.text is for oa_custom messages only", code="invalid_text")
    return Message(medium=medium, template_id=template_id, page=page, data=data, text=text)


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


def held_out(campaign_id: str, member_id: str, percent: float) -> bool:
    """Deterministic control group: the same member is held out of a campaign on every chunk,
    retry, resume and recurring run, independently of the pilot sample (another salt)."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"holdout:{campaign_id}:{member_id}".encode()).digest()
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
