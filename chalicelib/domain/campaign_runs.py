"""A campaign run: its state machine, what each recipient's WeChat answer means, and its stats.

Pure: plain data in, plain data out.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from chalicelib.domain.campaign_schedule import ONCE  # noqa: F401 - the run id of a one-time campaign
from chalicelib.errors import Conflict

# Every skip reason a campaign can report; the stats view lists each, zero or not.
SKIP_REASONS = ("no_credit", "frequency_capped", "unsubscribed", "no_openid", "invalid_openid", "outside_48h",
                "blocked", "response_limit")


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


def run_id_of(body: dict, *, required: bool = True) -> str | None:
    """The run a plan/send queue body belongs to: `run_id`, or `fire`, its name in bodies queued
    before the rename (chunks and shards in flight during a deploy, parked or DLQ'd messages)."""
    if "run_id" in body:
        return body["run_id"]
    if "fire" in body:
        return body["fire"]
    if required:
        raise KeyError("run_id")
    return None


def fire_decision(state: str, current_run: str | None, run_id: str) -> str:
    """What a fire of the schedule does: start | continue | park | drop."""
    if state == "scheduled":
        return "continue" if current_run == run_id else "start"
    if state == "running":
        # a duplicate fire, or a continuation, of the run in progress; a recurring fire that
        # overlaps a run still in progress is dropped (the next one will come)
        return "continue" if current_run == run_id else "drop"
    if state == "paused":
        return "park"
    return "drop"


# ---- delivery --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipient:
    member_id: str
    mp_openid: str | None = None
    oa_openid: str | None = None
    oa_subscribed: bool | None = None
    # the member's first touch (store, guide, scene), as the planner read it, when the campaign gives a
    # coupon: it keys the coupon's counters, so the sender need not read the member again (None: not
    # carried, e.g. a chunk planned before it was; the sender reads the member then)
    touch: tuple[str | None, str | None, str | None] | None = None

    def pack(self) -> dict:
        out = {"m": self.member_id}
        if self.mp_openid:
            out["mp"] = self.mp_openid
        if self.oa_openid:
            out["oa"] = self.oa_openid
        if self.oa_subscribed is not None:
            out["s"] = int(self.oa_subscribed)
        if self.touch is not None:
            out["t"] = list(self.touch)
        return out

    @classmethod
    def unpack(cls, data: dict) -> "Recipient":
        subscribed = data.get("s")
        touch = data.get("t")
        return cls(data["m"], data.get("mp"), data.get("oa"), None if subscribed is None else bool(subscribed),
                   tuple(touch) if isinstance(touch, list) and len(touch) == 3 else None)

    def openid(self, medium: str) -> str | None:
        return self.mp_openid if medium == "mp_subscribe" else self.oa_openid


def precheck(medium: str, recipient: Recipient) -> str | None:
    """A skip reason known before any write: no openid for the medium, or an OA follower who left."""
    if not recipient.openid(medium):
        return "no_openid"
    if medium in ("oa_template", "oa_custom") and recipient.oa_subscribed is False:
        return "unsubscribed"
    return None


def needs_credit(medium: str) -> bool:
    return medium == "mp_subscribe"


def frequency_day(now: datetime, tz: str) -> str:
    """The brand-local calendar day a send counts against for the frequency cap."""
    return now.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d")


def under_cap(count: int, cap: int | None) -> bool:
    return cap is None or count < cap


@dataclass(frozen=True)
class Outcome:
    state: str                   # sent | retry | token | skipped | failed | config
    reason: str | None = None


SENT = Outcome("sent")
OUTCOME_UNKNOWN = "outcome_unknown"

# the one table of WeChat answers (pure), shared with welcome messages and every other caller
from chalicelib.wechat import errors as answers  # noqa: E402 - kept beside its only use in this module

_OUTCOMES = {answers.TRANSIENT: "retry", answers.TOKEN_INVALID: "token", answers.RECIPIENT: "skipped",
             answers.REQUEST: "failed", answers.OUTCOME_UNKNOWN: "failed", answers.CONFIG: "config"}


def classify(errcode: int | None, *, api: str | None = None, outcome_unknown: bool = False) -> Outcome:
    """What a WeChat answer means for this recipient (chalicelib.wechat.errors decides): sent;
    retry (WeChat certainly did not act: busy, rate limits, 5xx, no connection); token (refresh
    once, then retry); skipped (a permanent answer about this user); failed (a permanent answer about the
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

def outcome_key(state: str, reason: str | None) -> str:
    """How an outcome is tallied: sent, skipped:<reason>, failed:<reason>."""
    if state == "sent":
        return "sent"
    return f"{'skipped' if state == 'skipped' else 'failed'}:{reason or 'unknown'}"


def stats_view(targeted: int, tallies: dict[str, int]) -> dict:
    skipped = {reason: 0 for reason in SKIP_REASONS}
    failed_reasons: dict[str, int] = {}
    sent = held_out = 0
    for key, n in tallies.items():
        if key == "sent":
            sent += n
        elif key == "held_out":
            held_out += n
        elif key.startswith("skipped:"):
            skipped[key[8:]] = skipped.get(key[8:], 0) + n
        elif key.startswith("failed:"):
            failed_reasons[key[7:]] = failed_reasons.get(key[7:], 0) + n
    failed = sum(failed_reasons.values())
    return {"targeted": targeted, "sent": sent, "failed": failed, "skipped": skipped,
            "failed_reasons": failed_reasons, "held_out": held_out,
            "done": sent + failed + held_out + sum(skipped.values())}
