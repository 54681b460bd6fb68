"""The sender: delivers one chunk of a campaign run, each recipient at most once, whatever happens.

Per recipient the ledger decides. A recipient is *claimed* by one conditional write (in a
transaction with the subscribe credit it consumes and the daily frequency count it adds); only the
claimant calls WeChat; the outcome is then *finalized* (in a transaction with the run's stats
tallies, so retries cannot count twice). What that means under failure:

- SQS redelivers a chunk, or two containers get the same chunk: final entries are skipped, a
  claim still held by a live attempt is left to it (its own message covers it);
- WeChat proves it did not act (-1, 45009, 5xx, no connection made): retried here with backoff;
  still failing, the claim is released (credit kept) and the chunk reported failed, so SQS retries
  it later and, after maxReceiveCount, dead-letters it as queued (redrive resumes it);
- the call may have reached WeChat but no answer says so (read timeout, reset, 504: the client's
  `OutcomeUnknown`): closed at once as failed `outcome_unknown`, credit consumed, never resent;
- a container dies between claim and finalize: the same, once the claim's lease (the dead
  invocation's deadline) is over;
- 40001/42001: the client expires exactly that token (compare-and-expire on the shared item) and
  retries once with a fresh one; permanent answers (43101, 40003, 45047, ...) are recorded, never
  retried (chalicelib.wechat.errors is the one table);
- a configuration error (40164 IP not whitelisted, 40125 bad secret, 48001 ...): no call from this
  account can succeed until a person fixes it, so the chunk stops at once instead of burning its
  audience: no further call is made, the recipient's claim is released (credit kept), unclaimed
  recipients stay unclaimed, and the chunk goes back to SQS. If the fix lands within SQS's retries
  the campaign carries on by itself; otherwise the chunk dead-letters as queued and a redrive resumes
  it. The client has logged the error and counted `WeChatConfigError` (alarmed on).

WeChat is called from a bounded thread pool (the call dominates), C calls in flight per container;
claims and finals are grouped (25 recipients per transaction) and run ahead of / behind the pool;
the chunk is read in blocks, the first one small, so the first calls go out after one short read.
Pause and cancel are noticed within a second; what is left of the chunk is parked or dropped.
"""
from __future__ import annotations

import random
import secrets
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from chalicelib.domain import campaigns as rules
from chalicelib.observability import count, logger
from chalicelib.resources import send_concurrency
from chalicelib.services import campaigns as service
from chalicelib.storage import campaigns as store
from chalicelib.wechat.client import WeChatError

CONCURRENCY = send_concurrency()   # WeChat calls in flight per container
GROUP = 25                   # recipients per claim / finalize transaction (<= 100 items)
TRIAGE_BLOCK = 100           # recipients read ahead per BatchGetItem round (ledger + credit keys)
ATTEMPTS = 3                 # WeChat attempts per recipient per delivery of the chunk
SEND_TIMEOUT = 3.0           # seconds per WeChat call
STATE_CHECK = 1.0            # seconds between checks for pause / cancel
FLUSH_AFTER = 0.25           # seconds a finished recipient may wait for its group's finalize
LEASE_MARGIN = 5             # seconds after the invocation's deadline before a claim is stale
COUPON_ATTEMPTS = 3

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="wechat-send")
    return _pool


class ChunkIncomplete(Exception):
    """Some recipients met only transient failures, or the account is misconfigured; the chunk must
    come again (SQS retry, then DLQ)."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Sent:
    recipient: rules.Recipient
    claim: str
    state: str                    # sent | skipped | failed | retry
    reason: str | None = None
    errcode: int | None = None
    coupon: str | None = None


class RateGate:
    """The campaign's `per_second` across containers: blocks of sends are reserved per wall-clock
    second in a DynamoDB counter (store.reserve_rate), then handed out locally."""

    def __init__(self, brand_id: str, campaign_id: str, per_second: int | None):
        self.brand_id, self.campaign_id, self.limit = brand_id, campaign_id, per_second
        self.block = max(1, min(GROUP, (per_second or 1) // 10))
        self._second, self._left = -1, 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self.limit:
            return
        with self._lock:
            while True:
                second = int(time.time())
                if second != self._second:
                    self._second, self._left = second, 0
                if self._left > 0:
                    self._left -= 1
                    return
                for want in (self.block, 1):
                    if store.reserve_rate(self.brand_id, self.campaign_id, second, want, self.limit, _utcnow()):
                        self._left = want - 1
                        return
                time.sleep(max(0.0, second + 1 - time.time()))


def deliver_chunk(body: dict, *, api=None, remaining: Callable[[], float] = lambda: 120.0) -> None:
    """Deliver one chunk message. Raises ChunkIncomplete when some recipients must be retried later;
    returns when every recipient is final, held by another live attempt, parked, or handed on."""
    brand_id, campaign_id, fire = body["brand_id"], body["campaign_id"], body["fire"]
    logger.thread_safe_append_keys(brand_id=brand_id, campaign_id=campaign_id, fire=fire, chunk=body.get("chunk"))
    while True:
        campaign = store.get(brand_id, campaign_id, consistent=True)
        if campaign is None or campaign.state == "cancelled":
            return
        if campaign.state != "paused":
            break
        if store.park(campaign, fire, "send", body, _utcnow()):
            return
    spec = rules.Spec.from_json(campaign.spec)
    now = _utcnow()
    allowed = rules.next_allowed(now, spec.schedule.timezone, spec.quiet_hours)
    if allowed > now:
        service.defer("send", body, allowed, now)
        return
    from chalicelib.services.wechat_apps import api_for, app_for
    from chalicelib.storage import tenancy
    brand = tenancy.require_brand(brand_id)
    app = app_for(brand, "mp" if spec.message.channel == "mp_subscribe" else "oa")
    mp_app_id = brand.mp_app_id
    run = ChunkRun(brand, campaign, spec, fire, body, api or api_for(app, timeout=SEND_TIMEOUT), remaining,
                   mp_app_id=mp_app_id)
    run.go()
    service.check_completion(brand_id, campaign_id, fire)
    if run.config_error is not None:
        raise ChunkIncomplete(f"stopped on a WeChat configuration error: {run.config_error}")
    if run.retry_later:
        raise ChunkIncomplete(f"{run.retry_later} recipients hit transient errors only")


class ChunkRun:
    def __init__(self, brand, campaign, spec: rules.Spec, fire: str, body: dict, api, remaining, *, mp_app_id):
        self.brand, self.campaign, self.spec, self.fire, self.body = brand, campaign, spec, fire, body
        self.api, self.remaining, self.mp_app_id = api, remaining, mp_app_id
        self.ledger = store.Ledger(brand.brand_id, campaign.campaign_id, fire)
        self.channel = spec.message.channel
        self.gate = RateGate(brand.brand_id, campaign.campaign_id, spec.limits.per_second)
        self.finals: list[store.Final] = []
        self.oldest_final = 0.0
        self.retry_later = 0
        self.config_error: WeChatError | None = None     # set once: no more calls from this chunk
        self.held: list[tuple[rules.Recipient, float]] = []
        self.counts: dict[str, int] = {}
        seen: set[str] = set()
        self.recipients = []
        for data in body.get("recipients", []):
            r = rules.Recipient.unpack(data)
            if r.member_id not in seen:
                seen.add(r.member_id)
                self.recipients.append(r)

    # -- the pipeline ---------------------------------------------------------------------------
    def go(self) -> None:
        untriaged = list(self.recipients)
        todo: list[tuple[rules.Recipient, store.Claim]] = []
        in_flight: dict[Future, tuple[rules.Recipient, str]] = {}
        stop = None                                  # paused | cancelled | deadline
        next_check = time.monotonic() + STATE_CHECK
        try:
            while ((todo or untriaged) and stop is None) or in_flight:
                while ((todo or untriaged) and stop is None and self.config_error is None
                       and len(in_flight) < CONCURRENCY + GROUP):
                    if len(todo) < GROUP and untriaged:
                        # triage in blocks, the first one small: the first WeChat calls start after
                        # one small read and one claim, not after reading the whole chunk
                        size = GROUP if len(untriaged) == len(self.recipients) else TRIAGE_BLOCK
                        block, untriaged = untriaged[:size], untriaged[size:]
                        todo += self._triage(block)
                        continue
                    group, todo = todo[:GROUP], todo[GROUP:]
                    for recipient, token in self._claim(group):
                        in_flight[pool().submit(self._send, recipient, token)] = (recipient, token)
                if in_flight:
                    done, _ = wait(list(in_flight), timeout=FLUSH_AFTER, return_when=FIRST_COMPLETED)
                    for future in done:
                        in_flight.pop(future)
                        self._finished(future.result())
                self._flush(force=False)
                if self.config_error is not None and stop is None:
                    stop = "config_error"
                if time.monotonic() >= next_check and stop is None:
                    next_check = time.monotonic() + STATE_CHECK
                    stop = self._should_stop()
                if stop is None and (todo or untriaged) and self.remaining() < self._runway():
                    stop = "deadline"
        except BaseException:
            # Dying: claims whose WeChat call has not started are released (safe to send later);
            # calls already made are left claimed, and become `outcome_unknown` once the lease ends.
            for future, (recipient, token) in in_flight.items():
                if future.cancel():
                    self._final(store.Final(recipient.member_id, "retry", token=token))
            try:
                self._flush(force=True)
            except Exception:  # noqa: BLE001 - the original failure is the one to report
                logger.exception("could not release claims")
            raise
        self._flush(force=True)
        left = [r for r, _claim in todo] + untriaged
        if left:
            self._hand_on(stop, left)
        if self.held:
            self._recheck_later()
        logger.info("chunk done", extra={"outcomes": self.counts, "held": len(self.held), "left": len(left)})

    def _runway(self) -> float:
        return ATTEMPTS * (SEND_TIMEOUT + 2) + 5

    def _triage(self, recipients: list[rules.Recipient]) -> list[tuple[rules.Recipient, store.Claim]]:
        """Sort recipients: already final, held by another attempt, stale, skippable without WeChat
        (no openid, no credit, capped: read consistently, then written final), or to be claimed."""
        template = self.spec.message.template_id
        cap = self.spec.limits.frequency_cap_per_day
        day = rules.frequency_day(_utcnow(), self.spec.schedule.timezone) if cap else None
        credit = rules.needs_credit(self.channel)
        ledger, credits, counts = self.ledger.prefetch(
            [r.member_id for r in recipients],
            [(r.mp_openid, template) for r in recipients if credit and r.mp_openid],
            [(r.member_id, day) for r in recipients] if cap else [])
        lease_until = time.time() + self.remaining() + LEASE_MARGIN
        todo = []
        for r in recipients:
            entry = ledger.get(r.member_id)
            if entry is not None:
                claim = self._resume(r, entry, lease_until)
                if claim is not None:
                    todo.append((r, claim))
                continue
            reason = rules.precheck(self.channel, r)
            if reason is None and credit and credits.get(r.mp_openid, 0) < 1:
                reason = "no_credit"
            if reason is None and cap and not rules.under_cap(counts.get(r.member_id, 0), cap):
                reason = "frequency_capped"
            if reason:
                self._final(store.Final(r.member_id, "skipped", reason))
                continue
            todo.append((r, store.Claim(r.member_id, secrets.token_hex(8), lease_until, reclaim=False,
                                        credit=(r.mp_openid, template) if credit else None,
                                        frequency=(day, cap) if cap else None)))
        return todo

    def _resume(self, r: rules.Recipient, entry, lease_until: float) -> store.Claim | None:
        """What to do about a recipient whose ledger entry exists: nothing if final; claim again if
        released; if claimed, close it when the claimant's lease is over, else look again then."""
        if entry.state == "retry":
            return store.Claim(r.member_id, secrets.token_hex(8), lease_until, reclaim=True)
        if entry.state == "sending":
            if float(entry.lease_until or 0) < time.time():
                # the claimant is gone (its deadline passed): whether WeChat delivered is unknowable
                self._final(store.Final(r.member_id, "failed", "outcome_unknown", token=entry.claim))
            else:
                self.held.append((r, float(entry.lease_until)))
        return None

    def _recheck_later(self) -> None:
        """Recipients another attempt holds: that attempt finalizes them, unless it died. Look again
        after its lease ends (a delayed message, so no receive count is spent waiting)."""
        until = max(lease for _r, lease in self.held)
        rest = {**self.body, "recipients": [r.pack() for r, _lease in self.held],
                "chunk": f"{self.body.get('chunk')}?"}
        service.enqueue("send", [rest], delay=max(1, min(service.MAX_DELAY, int(until - time.time()) + 1)))

    def _claim(self, group: list[tuple[rules.Recipient, store.Claim]]) -> list[tuple[rules.Recipient, str]]:
        claims = [c for _r, c in group]
        if not self.ledger.claim_many(claims, _utcnow()):
            return [(r, c.token) for r, c in group]
        claimed = []
        for r, c in group:             # the group was refused as a whole: settle each on its own
            outcome = self.ledger.claim_one(c, _utcnow())
            if outcome == "claimed":
                claimed.append((r, c.token))
            elif outcome == "ledger":
                entry = self.ledger.entry(r.member_id)
                if entry is not None and entry.state == "retry":
                    again = store.Claim(r.member_id, secrets.token_hex(8), c.lease_until, reclaim=True)
                    if self.ledger.claim_one(again, _utcnow()) == "claimed":
                        claimed.append((r, again.token))
                elif entry is not None:
                    self._resume(r, entry, c.lease_until)
            else:
                self._final(store.Final(r.member_id, "skipped", outcome))
        return claimed

    def _send(self, r: rules.Recipient, token: str) -> Sent:
        """In the pool: call WeChat (retrying only what proves WeChat did not act), then issue the
        coupon if delivered. An unknown outcome is final: the message may be out, so never again."""
        last: WeChatError | None = None
        for attempt in range(1, ATTEMPTS + 1):
            if self.config_error is not None:
                # another call of this chunk met a configuration error: release, do not call
                return Sent(r, token, "retry", None, self.config_error.errcode)
            self.gate.acquire()
            try:
                self._call(r)
                return Sent(r, token, "sent", coupon=self._coupon(r))
            except WeChatError as err:
                last = err
                outcome = rules.classify(err.errcode, api=err.api, outcome_unknown=err.outcome_unknown)
            except Exception as err:  # noqa: BLE001
                # not WeChat's answer (the client reports any failure once the request may have been
                # written as OutcomeUnknown), e.g. the token store failed first: nothing sent, retried
                logger.warning("send failed unexpectedly", extra={"error": repr(err)})
                last, outcome = None, rules.Outcome("retry", "unexpected")
            if outcome.kind == "skip":
                return Sent(r, token, "skipped", outcome.reason, last.errcode)
            if outcome.kind == "fail":
                if outcome.reason == rules.OUTCOME_UNKNOWN:
                    count("CampaignOutcomeUnknown")
                    logger.warning("send outcome unknown: recorded, never resent",
                                   extra={"member_id": r.member_id, "error": last.errmsg})
                    return Sent(r, token, "failed", outcome.reason, None)
                return Sent(r, token, "failed", outcome.reason, last.errcode)
            if outcome.kind == "config":
                self.config_error = self.config_error or last
                return Sent(r, token, "retry", None, last.errcode)
            if attempt < ATTEMPTS:
                time.sleep(rules.backoff(attempt) * random.uniform(0.5, 1.0))
        return Sent(r, token, "retry", None, last.errcode if last else None)

    def _call(self, r: rules.Recipient) -> None:
        m = self.spec.message
        openid = r.openid(self.channel)
        if self.channel == "mp_subscribe":
            self.api.subscribe_send(openid, m.template_id, m.data, m.page)
        elif self.channel == "oa_template":
            mini = {"appid": self.mp_app_id, "pagepath": m.page} if (m.page and self.mp_app_id) else None
            self.api.template_send(openid, m.template_id, m.data, miniprogram=mini)
        else:
            self.api.custom_send_text(openid, m.text)

    def _coupon(self, r: rules.Recipient) -> str | None:
        template = self.spec.coupon_template_id
        if not template:
            return None
        from chalicelib.services import coupons            # loaded only by campaigns that attach one
        for attempt in range(1, COUPON_ATTEMPTS + 1):
            try:
                code = coupons.issue_coupon(self.brand, r.member_id, template,
                                            issue_key=f"campaign:{self.campaign.campaign_id}:{self.fire}:{r.member_id}",
                                            source="campaign")
                return code or "none"                        # none: out of stock or over the member's limit
            except Exception:  # noqa: BLE001 - the message is out; the coupon is retried, then reported
                if attempt == COUPON_ATTEMPTS:
                    logger.exception("campaign coupon not issued", extra={"member_id": r.member_id})
                    return "error"
                time.sleep(rules.backoff(attempt))
        return None

    # -- finals ---------------------------------------------------------------------------------
    def _finished(self, result: Sent) -> None:
        if result.state == "retry":
            self.retry_later += 1
        self._final(store.Final(result.recipient.member_id, result.state, result.reason, token=result.claim,
                                errcode=result.errcode, coupon=result.coupon))

    def _final(self, final: store.Final) -> None:
        if not self.finals:
            self.oldest_final = time.monotonic()
        self.finals.append(final)
        self.counts[final.state] = self.counts.get(final.state, 0) + 1

    def _flush(self, *, force: bool) -> None:
        while self.finals and (force or len(self.finals) >= GROUP or time.monotonic() - self.oldest_final > FLUSH_AFTER):
            group, self.finals = self.finals[:GROUP], self.finals[GROUP:]
            self.oldest_final = time.monotonic()
            now = _utcnow()
            while group:            # each refusal removes at least one entry, so this ends
                refused = self.ledger.finalize(group, now)
                if not refused:
                    break
                # another attempt closed these first (never ours to count): finalize the rest
                logger.warning("ledger entries changed under us", extra={"members": sorted(refused)[:5]})
                group = [f for f in group if f.member_id not in refused]
            sent = sum(1 for f in group if f.state == "sent")
            if sent:
                count("CampaignMessagesSent", sent)

    # -- stopping early -------------------------------------------------------------------------
    def _should_stop(self) -> str | None:
        campaign = store.get(self.brand.brand_id, self.campaign.campaign_id, consistent=True)
        if campaign is None or campaign.state == "cancelled":
            return "cancelled"
        if campaign.state == "paused":
            self.campaign = campaign
            return "paused"
        return None

    def _hand_on(self, stop: str | None, left: list[rules.Recipient]) -> None:
        """Recipients not yet claimed when the chunk stopped: parked while paused, re-queued at the
        deadline, dropped when cancelled, left to the chunk's own redelivery on a configuration error
        (the chunk is reported failed: it comes again, then dead-letters as queued)."""
        if stop in ("cancelled", "config_error"):
            return
        rest = {**self.body, "recipients": [r.pack() for r in left], "chunk": f"{self.body.get('chunk')}+"}
        if stop == "paused" and store.park(self.campaign, self.fire, "send", rest, _utcnow()):
            logger.info("chunk parked", extra={"left": len(left)})
            return
        service.enqueue("send", [rest])
