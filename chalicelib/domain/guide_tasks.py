"""Head-office tasks to guides (总部直达导购): the task a brand defines, the chunks WeCom is asked to
create per guide, and how WeCom's per-customer results become the task's figures. Pure.

WeCom's customer group message (`externalcontact/add_msg_template`, chat_type single) is created in
the name of one guide (`sender`) for at most MAX_PER_CALL of that guide's own customers, and only
goes out once the guide confirms it on their phone. So a task becomes, for each guide, chunks of
their contacts in the audience; each chunk is one WeCom message task (msgid). WeCom then reports:
- per guide (`get_groupmsg_task`): status 2 = the guide sent it (confirmed), 0 = not yet;
- per customer (`get_groupmsg_send_result`): 1 sent, 2 no longer the guide's contact, 3 refused
  because the customer already received a group message today (the once-a-day cap), 0 not sent.
Every targeted customer ends in exactly one bucket: sent, capped, not_contact, unconfirmed.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from chalicelib import ids
from chalicelib.domain import campaigns as campaign_rules
from chalicelib.errors import BadRequest

MAX_PER_CALL = 10_000             # WeCom: external_userid per add_msg_template
MAX_CHUNK_CHARS = 340_000         # a chunk's customers are stored in its ledger item (DynamoDB: 400 KB):
                                  # 10,000 external_userids of WeCom's 32 characters fit
MAX_REFUSED_CHARS = 40_000        # add_msg_template's fail_list kept beside them; longer: ALL_ABSENT
ALL_ABSENT = "*"                  # "every customer WeCom's send list leaves out was refused at creation"
MAX_DUE = timedelta(days=30)      # WeCom keeps a group message's results for a month
MIN_DUE = timedelta(minutes=10)
MAX_GUIDES = 2_000
MAX_TEXT = 4_000                  # WeCom's text content limit (bytes, roughly)
BUCKETS = ("sent", "capped", "not_contact", "unconfirmed")
AUDIENCE_KEYS = {"tags_any", "tags_all", "joined_after", "joined_before"}
BODY_KEYS = {"name", "guide_ids", "store_ids", "audience", "message", "send_at", "due_at", "timezone"}


@dataclass(frozen=True)
class TaskSpec:
    name: str
    guide_ids: tuple[str, ...]
    store_ids: tuple[str, ...]
    audience: campaign_rules.Audience
    text: str | None
    miniprogram: dict | None
    send_at: str                  # UTC "YYYY-MM-DDTHH:MM:SSZ"
    due_at: str
    timezone: str

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "TaskSpec":
        data = json.loads(text)
        data["audience"] = campaign_rules.Audience(**{k: tuple(v) if isinstance(v, list) else v
                                                       for k, v in data["audience"].items()})
        return cls(**{**data, "guide_ids": tuple(data["guide_ids"]), "store_ids": tuple(data["store_ids"])})

    def view(self) -> dict:
        aud = self.audience
        return {"name": self.name, "guide_ids": list(self.guide_ids), "store_ids": list(self.store_ids),
                "audience": {"tags_any": list(aud.tags_any), "tags_all": list(aud.tags_all),
                             "joined_after": aud.joined_after, "joined_before": aud.joined_before},
                "message": {"text": self.text, "miniprogram": self.miniprogram},
                "send_at": self.send_at, "due_at": self.due_at, "timezone": self.timezone}

    def wecom_body(self, sender: str, external_userids: list[str]) -> dict:
        """The add_msg_template request for one chunk."""
        body: dict = {"chat_type": "single", "sender": sender, "external_userid": external_userids}
        if self.text:
            body["text"] = {"content": self.text}
        if self.miniprogram:
            body["attachments"] = [{"msgtype": "miniprogram", "miniprogram": dict(self.miniprogram)}]
        return body


def _ids(value, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value or len(value) > MAX_GUIDES:
        raise BadRequest(f"{name} must be a non-empty list of at most {MAX_GUIDES} ids", code=f"invalid_{name}")
    return tuple(sorted({ids.slug(v, name) for v in value}))


def _text(value, name: str, limit: int, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if (not isinstance(value, str) or not value.strip() or len(value) > limit
            or not all(c.isprintable() or c in "\n\t" for c in value)):
        raise BadRequest(f"{name} must be text of 1-{limit} characters", code=f"invalid_{name.replace('.', '_')}")
    return value


def _miniprogram(value) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"title", "appid", "page", "pic_media_id"}:
        raise BadRequest("message.miniprogram takes title, appid, page, pic_media_id", code="invalid_miniprogram")
    out = {}
    for key, limit in (("title", 64), ("appid", 32), ("page", 256), ("pic_media_id", 256)):
        out[key] = _text(value.get(key), f"message.miniprogram.{key}", limit, required=True)
    return out


def spec(body: dict, *, brand_timezone: str, now: datetime) -> TaskSpec:
    """A task from the request body; BadRequest (nothing stored) for anything that cannot be right."""
    unknown = sorted(set(body) - BODY_KEYS)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown[:5])}", code="unknown_field")
    name = _text(body.get("name"), "name", 100, required=True)
    guide_ids, store_ids = _ids(body.get("guide_ids"), "guide_ids"), _ids(body.get("store_ids"), "store_ids")
    if bool(guide_ids) == bool(store_ids):
        raise BadRequest("give exactly one of guide_ids and store_ids", code="missing_guides")
    tz = body.get("timezone") or brand_timezone
    campaign_rules.zone(tz)
    audience_body = body.get("audience") or {}
    if not isinstance(audience_body, dict) or set(audience_body) - AUDIENCE_KEYS:
        raise BadRequest("audience takes " + ", ".join(sorted(AUDIENCE_KEYS)), code="invalid_audience")
    audience = campaign_rules.audience(audience_body, tz, now)
    message = body.get("message")
    if not isinstance(message, dict) or set(message) - {"text", "miniprogram"}:
        raise BadRequest("message takes text and miniprogram", code="invalid_message")
    text = _text(message.get("text"), "message.text", MAX_TEXT)
    miniprogram = _miniprogram(message.get("miniprogram"))
    if text is None and miniprogram is None:
        raise BadRequest("message needs text or a miniprogram card", code="invalid_message")
    send_at = campaign_rules._instant(body.get("send_at"), "send_at", tz, now)
    due_at = campaign_rules._instant(body.get("due_at"), "due_at", tz, now)
    if send_at < now - timedelta(minutes=1):
        raise BadRequest("send_at is in the past", code="invalid_send_at")
    if not MIN_DUE <= due_at - send_at <= MAX_DUE:
        raise BadRequest("due_at must be 10 minutes to 30 days after send_at (WeCom keeps results a month)",
                         code="invalid_due_at")
    return TaskSpec(name=name, guide_ids=guide_ids, store_ids=store_ids, audience=audience, text=text,
                    miniprogram=miniprogram, send_at=campaign_rules.utc_iso(send_at),
                    due_at=campaign_rules.utc_iso(due_at), timezone=tz)


def schedule_expression(send_at: str, tz: str) -> str:
    local = campaign_rules.parse_instant(send_at).astimezone(campaign_rules.zone(tz))
    return f"at({local.strftime('%Y-%m-%dT%H:%M:%S')})"


def in_audience(task_id: str, audience: campaign_rules.Audience, member: campaign_rules.MemberFacts) -> bool:
    return campaign_rules.eligible(task_id, audience, member)


def chunks(external_userids: list[str]) -> list[list[str]]:
    """The guide's targeted customers (sorted: a replan of the same contacts makes the same chunks) in
    chunks of at most MAX_PER_CALL that fit a ledger item."""
    out: list[list[str]] = []
    size = 0
    for ext in sorted(set(external_userids)):
        if not out or len(out[-1]) >= MAX_PER_CALL or size + len(ext) + 1 > MAX_CHUNK_CHARS:
            out.append([])
            size = 0
        out[-1].append(ext)
        size += len(ext) + 1
    return out


@dataclass
class ChunkResult:
    """What WeCom says of one chunk: whether the guide confirmed it, and each customer's bucket."""
    confirmed: bool
    buckets: dict[str, int] = field(default_factory=lambda: {b: 0 for b in BUCKETS})
    sent_ids: list[str] = field(default_factory=list)


def chunk_result(targeted: list[str], refused_at_creation: list[str], guide_status: int | None,
                 send_list: list[dict]) -> ChunkResult:
    """Each targeted customer in exactly one bucket. WeCom's per-customer status wins; a customer it
    refused when the message was created (fail_list) and does not list is not a contact; anyone else
    not reported as sent, capped or not a contact is unconfirmed."""
    status = {}
    for row in send_list:
        ext = row.get("external_userid")
        if isinstance(ext, str):
            status[ext] = int(row.get("status") or 0)
    refused = set(refused_at_creation)
    all_absent = ALL_ABSENT in refused
    result = ChunkResult(confirmed=guide_status == 2)
    for ext in targeted:
        s = status.get(ext)
        if s == 1:
            bucket = "sent"
            result.sent_ids.append(ext)
        elif s == 3:
            bucket = "capped"
        elif s == 2 or (s is None and (all_absent or ext in refused)):
            bucket = "not_contact"
        else:
            bucket = "unconfirmed"
        result.buckets[bucket] += 1
    return result


def refused_text(fail_list: list[str]) -> str | None:
    """How a chunk's ledger item keeps WeCom's fail_list (bounded: see MAX_REFUSED_CHARS)."""
    text = "\n".join(fail_list)
    return (text if len(text) <= MAX_REFUSED_CHARS else ALL_ABSENT) or None


def figures(assigned: int, executed: int, buckets: dict[str, int]) -> dict:
    """The task's (or a guide's) figures."""
    targeted = sum(buckets.get(b, 0) for b in BUCKETS)
    return {"guides_assigned": assigned, "guides_executed": executed,
            "execution_rate": round(executed / assigned, 4) if assigned else None,
            "contacts_targeted": targeted, "contacts_sent": buckets.get("sent", 0),
            "buckets": {b: buckets.get(b, 0) for b in BUCKETS}}


def cap_day(moment: datetime, tz: str) -> str:
    """The day of WeCom's once-a-day cap, in the brand's time zone."""
    return moment.astimezone(campaign_rules.zone(tz)).date().isoformat()
