"""The sender: delivers one chunk of a campaign run, each recipient at most once, whatever happens.

Per recipient the ledger decides (storage.ledger). A recipient is *claimed* by one conditional
UpdateItem on its claim item (its subscribe-credit item, or its reach item) that records the run's
mark, takes the credit and counts the frequency cap at once; only the claimant calls WeChat; the
outcomes of a group of recipients are then recorded as one item in one transaction with the run's
stats tallies (so retries cannot count twice). What that means under failure:

- SQS redelivers a chunk, or two containers get the same chunk: final entries are skipped, a
  claim still held by a live attempt is left to it (its own message covers it);
- WeChat proves it did not act (-1, 45009, 5xx, no connection made): retried here with backoff;
  still failing, the claim is released (credit kept) and the chunk reported failed, so SQS retries
  it later and, after maxReceiveCount, dead-letters it as queued (redrive resumes it);
- the call may have reached WeChat but no answer says so (read timeout, reset, 504: the client's
  `OutcomeUnknown`): closed at once as failed `outcome_unknown`, credit consumed, never resent;
- a container dies between claim and recording: the same, once the claim's lease (the dead
  invocation's deadline) is over and its group's outcome item does not name the recipient (the
  mark is closed, conditional on the exact mark read, in one transaction with that outcome);
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
claims run ahead of the pool (CLAIM_CONCURRENCY UpdateItems in flight), outcomes behind it (one
transaction per group of GROUP recipients, once all of them have an outcome);
the chunk is read in blocks, the first one small, so the first calls go out after one short read.
Pause and cancel are noticed within a second; what is left of the chunk is parked or dropped.
"""
from __future__ import annotations

import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Protocol

from chalicelib.domain import campaigns as rules
from chalicelib.observability import count, logger
from chalicelib.resources import send_concurrency
from chalicelib.services import campaigns as service
from chalicelib.storage import campaigns as campaign_store   # not `store`: that is a retail store
from chalicelib.storage import ledger
from chalicelib.wechat.client import WeChatError

CONCURRENCY = send_concurrency()   # WeChat calls in flight per container
CLAIM_CONCURRENCY = 16       # per-recipient claims in flight per container (one UpdateItem each)
GROUP = 50                   # recipients per claim group: their outcomes are one item, one transaction
# a campaign with a coupon: each group's record also adds its coupons' counters (the scoreboard's
# day/store/guide/channel and template rows, the template's issued count, one outbox item), a set of
# items per group whatever its size, so bigger groups share them among more coupons (issue 10's cost)
COUPON_GROUP = 100
TRIAGE_BLOCK = 100           # recipients read ahead per BatchGetItem round (claim items)
ATTEMPTS = 3                 # WeChat attempts per recipient per delivery of the chunk
SEND_TIMEOUT = 3.0           # seconds per WeChat call
STATE_CHECK = 1.0            # seconds between checks for pause / cancel
LEASE_MARGIN = 5             # seconds after the invocation's deadline before a claim is stale
COUPON_ATTEMPTS = 3

_pools: dict[str, ThreadPoolExecutor] = {}
_pool_lock = threading.Lock()


def _shared_pool(prefix: str, workers: int) -> ThreadPoolExecutor:
    """One pool per purpose per container, made on first use (a container that never sends makes none)."""
    made = _pools.get(prefix)
    if made is None:
        with _pool_lock:
            made = _pools.get(prefix)
            if made is None:
                made = _pools[prefix] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=prefix)
    return made


def pool() -> ThreadPoolExecutor:
    return _shared_pool("wechat-send", CONCURRENCY)


def claim_pool() -> ThreadPoolExecutor:
    return _shared_pool("ledger-claim", CLAIM_CONCURRENCY)


class ChunkIncomplete(Exception):
    """Some recipients met only transient failures, or the account is misconfigured; the chunk must
    come again (SQS retry, then DLQ)."""


class Clock:
    """Time, sleep and randomness as the sender sees them; tests pass their own."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def jitter(self, low: float, high: float) -> float:
        return random.uniform(low, high)


REAL_CLOCK = Clock()


def _utcnow() -> datetime:
    return REAL_CLOCK.now()


class LedgerStore(Protocol):
    """What the sender needs of the ledger (storage.ledger.Ledger; an in-memory one in
    storage.ledger_memory for tests)."""

    def claim_item(self, member_id: str, openid: str | None, template: str | None,
                   capped: bool = False) -> tuple[str, str]: ...
    def item_attrs(self, key: tuple[str, str], openid: str | None, template: str | None) -> dict: ...
    def prefetch(self, keys: dict, credit_keys: dict, day: str | None, now: float) -> dict[str, ledger.Seen]: ...
    def claim(self, c: ledger.Claim) -> str: ...
    def read_mark(self, key: tuple[str, str]) -> tuple[str | None, dict]: ...
    def release(self, key: tuple[str, str], claimed: str, released: ledger.Mark) -> bool: ...
    def record(self, group: str, part: int, finals: list[ledger.Final], now: datetime, extend=None) -> bool: ...
    def close(self, key: tuple[str, str], seen: str, final: ledger.Final, now: datetime, extend=None) -> bool: ...
    def group_outcomes(self, group: str) -> dict[str, list]: ...


@dataclass
class SendOutcome:
    recipient: rules.Recipient
    claim: "Todo"
    state: str                    # sent | skipped | failed | retry
    reason: str | None = None
    errcode: int | None = None
    coupon: str | None = None


@dataclass
class Todo:
    """A recipient to mark in this run: claimed for a send, or marked skipped (`skip` reason)."""
    recipient: rules.Recipient
    key: tuple[str, str]                    # the claim item
    credit_key: tuple[str, str] | None = None   # the credit item, when a cap put the mark on the reach item
    skip: str | None = None
    hold: bool = False                      # in the campaign's control group: marked held_out, not sent
    replaces: str | None = None             # a released mark: claimed again without a new credit
    prune: tuple = ()                       # old marks / frequency days on the claim item
    mark: str | None = None                 # the mark written, once claimed
    group: str | None = None


@dataclass
class Group:
    size: int                               # recipients marked in it whose outcome is not yet written
    finals: list = field(default_factory=list)
    part: int = 0


class RateGate:
    """The campaign's `per_second` across containers: blocks of sends are reserved per wall-clock
    second in a DynamoDB counter (campaign_store.reserve_rate), then handed out locally."""

    def __init__(self, brand_id: str, campaign_id: str, per_second: int | None, *, clock: Clock = REAL_CLOCK,
                 reserve: Callable[..., bool] | None = None):
        self.brand_id, self.campaign_id, self.limit = brand_id, campaign_id, per_second
        self.block = max(1, min(GROUP, (per_second or 1) // 10))
        self.clock = clock
        self.reserve = reserve or campaign_store.reserve_rate
        self._second, self._left = -1, 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self.limit:
            return
        with self._lock:
            while True:
                second = int(self.clock.time())
                if second != self._second:
                    self._second, self._left = second, 0
                if self._left > 0:
                    self._left -= 1
                    return
                for want in (self.block, 1):
                    if self.reserve(self.brand_id, self.campaign_id, second, want, self.limit, self.clock.now()):
                        self._left = want - 1
                        return
                self.clock.sleep(max(0.0, second + 1 - self.clock.time()))


def deliver_chunk(body: dict, *, api=None, remaining: Callable[[], float] = lambda: 120.0) -> None:
    """Deliver one chunk message. Raises ChunkIncomplete when some recipients must be retried later;
    returns when every recipient is final, held by another live attempt, parked, or handed on."""
    brand_id, campaign_id, run_id = body["brand_id"], body["campaign_id"], rules.run_id_of(body)
    logger.thread_safe_append_keys(brand_id=brand_id, campaign_id=campaign_id, run_id=run_id, chunk=body.get("chunk"))
    while True:
        campaign = campaign_store.get(brand_id, campaign_id, consistent=True)
        if campaign is None or campaign.state == "cancelled":
            return
        if campaign.state != "paused":
            break
        if campaign_store.park(campaign, run_id, "send", body, _utcnow()):
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
    app = app_for(brand, "mp" if spec.message.medium == "mp_subscribe" else "oa")
    mp_app_id = brand.mp_app_id
    run = ChunkRun(brand, campaign, spec, run_id, body, api or api_for(app, timeout=SEND_TIMEOUT), remaining,
                   mp_app_id=mp_app_id)
    run.go()
    service.check_completion(brand_id, campaign_id, run_id)
    if run.config_error is not None:
        raise ChunkIncomplete(f"stopped on a WeChat configuration error: {run.config_error}")
    if run.retry_later:
        raise ChunkIncomplete(f"{run.retry_later} recipients hit transient errors only")


class ChunkRun:
    def __init__(self, brand, campaign, spec: rules.Spec, run_id: str, body: dict, api, remaining, *, mp_app_id,
                 ledger_store: LedgerStore | None = None, clock: Clock = REAL_CLOCK, gate: RateGate | None = None,
                 requeue: Callable[[dict, int | None], None] | None = None,
                 campaign_state: Callable[[], object] | None = None):
        self.brand, self.campaign, self.spec, self.run_id, self.body = brand, campaign, spec, run_id, body
        self.api, self.remaining, self.mp_app_id = api, remaining, mp_app_id
        self.clock = clock
        self.ledger: LedgerStore = ledger_store or ledger.Ledger(brand.brand_id, campaign.campaign_id, run_id)
        self.medium = spec.message.medium
        self.gate = gate or RateGate(brand.brand_id, campaign.campaign_id, spec.limits.per_second, clock=clock)
        self.requeue = requeue or (lambda body, delay: service.enqueue("send", [body], delay=delay) if delay
                                   else service.enqueue("send", [body]))
        self.campaign_state = campaign_state or (
            lambda: campaign_store.get(self.brand.brand_id, self.campaign.campaign_id, consistent=True))
        self.groups: dict[str, Group] = {}
        self.retry_later = 0
        self.config_error: WeChatError | None = None     # set once: no more calls from this chunk
        self.held: list[tuple[rules.Recipient, float]] = []
        self.counts: dict[str, int] = {}
        self._outcomes_seen: dict[str, dict] = {}
        self._coupons = None                         # services.campaign_coupons.CampaignCoupons, once needed
        self.group_size = COUPON_GROUP if spec.coupon_template_id else GROUP
        self._coupons_lock = threading.Lock()
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
        todo: list[Todo] = []
        in_flight: dict[Future, Todo] = {}
        stop = None                                  # paused | cancelled | deadline | config_error
        next_check = self.clock.monotonic() + STATE_CHECK
        try:
            while ((todo or untriaged) and stop is None) or in_flight:
                while ((todo or untriaged) and stop is None and self.config_error is None
                       and len(in_flight) < CONCURRENCY + self.group_size):
                    if len(todo) < self.group_size and untriaged:
                        # triage in blocks, the first one small: the first WeChat calls start after
                        # one small read and one round of claims, not after reading the whole chunk
                        size = self.group_size if len(untriaged) == len(self.recipients) else TRIAGE_BLOCK
                        block, untriaged = untriaged[:size], untriaged[size:]
                        todo += self._triage(block)
                        continue
                    group, todo = todo[:self.group_size], todo[self.group_size:]

                    def start(t: Todo) -> None:
                        in_flight[pool().submit(self._send, t.recipient, t)] = t

                    self._claim(group, start)      # each send starts as soon as its own claim returns
                if in_flight:
                    done, _ = wait(list(in_flight), timeout=0.25, return_when=FIRST_COMPLETED)
                    for future in done:
                        in_flight.pop(future)
                        self._finished(future.result())
                self._flush(force=False)
                if self.config_error is not None and stop is None:
                    stop = "config_error"
                if self.clock.monotonic() >= next_check and stop is None:
                    next_check = self.clock.monotonic() + STATE_CHECK
                    stop = self._should_stop()
                if stop is None and (todo or untriaged) and self.remaining() < self._runway():
                    stop = "deadline"
        except BaseException:
            # Dying: claims whose WeChat call has not started are released (safe to send later);
            # calls already made are left claimed, and become `outcome_unknown` once the lease ends.
            for future, t in in_flight.items():
                if future.cancel():
                    self._release(t)
            try:
                self._flush(force=True)
            except Exception:  # noqa: BLE001 - the original failure is the one to report
                logger.exception("could not record outcomes")
            raise
        self._flush(force=True)
        left = [t.recipient for t in todo] + untriaged
        if left:
            self._hand_on(stop, left)
        if self.held:
            self._recheck_later()
        logger.info("chunk done", extra={"outcomes": self.counts, "held": len(self.held), "left": len(left)})

    def _runway(self) -> float:
        return ATTEMPTS * (SEND_TIMEOUT + 2) + 5

    def _lease_until(self) -> float:
        return self.clock.time() + self.remaining() + LEASE_MARGIN

    def _triage(self, recipients: list[rules.Recipient]) -> list[Todo]:
        """Sort recipients: decided already (final, held by another attempt, stale: closed), released
        (claimed again), skippable without WeChat (no openid, no credit, capped: marked skipped), or
        to be claimed. The read is a guide; the conditional marks decide."""
        template = self.spec.message.template_id if rules.needs_credit(self.medium) else None
        cap = self.spec.limits.frequency_cap_per_day
        day = rules.frequency_day(self.clock.now(), self.spec.schedule.timezone) if cap else None
        keys, credit_keys = {}, {}
        for r in recipients:
            openid = r.mp_openid if template else None
            keys[r.member_id] = self.ledger.claim_item(r.member_id, openid, template, bool(cap))
            if cap and template and openid:
                credit_keys[r.member_id] = self.ledger.claim_item(r.member_id, openid, template)
        seen = self.ledger.prefetch(keys, credit_keys, day, self.clock.time())
        todo = []
        for r in recipients:
            s = seen[r.member_id]
            t = Todo(r, keys[r.member_id], credit_keys.get(r.member_id))
            if s.mark is not None:
                again = self._resume(t, s.mark)
                if again is not None:
                    todo.append(again)
                continue
            reason = rules.precheck(self.medium, r)
            if reason is None and template and s.credits < 1:
                reason = "no_credit"
            if reason is None and cap and not rules.under_cap(s.day_count, cap):
                reason = "frequency_capped"
            t.skip = reason
            t.hold = reason is None and rules.held_out(self.campaign.campaign_id, r.member_id,
                                                        self.spec.audience.holdout_percent)
            t.prune = s.stale
            todo.append(t)
        return todo

    def _resume(self, t: Todo, text: str) -> Todo | None:
        """A recipient this run has a mark for: nothing if final; claim again if released; if
        claimed (or a skip being recorded), look again after the lease, or close it when the
        claimant is gone and its group never recorded it."""
        mark = ledger.Mark.parse(text)
        if mark.state in ledger.FINAL_MARKS:
            return None
        if mark.state == "r":
            t.replaces = text
            return t
        if mark.lease >= self.clock.time():
            self.held.append((t.recipient, mark.lease))
            return None
        if mark.group not in self._outcomes_seen:
            self._outcomes_seen[mark.group] = self.ledger.group_outcomes(mark.group)
        if t.recipient.member_id in self._outcomes_seen[mark.group]:
            return None                               # recorded by its claimant: final
        # the claimant is gone (its deadline passed) and never recorded it: whether WeChat
        # delivered is unknowable for a claim, so it is failed outcome_unknown and never resent
        if mark.state == "k":
            final = ledger.Final(t.recipient.member_id, "skipped", mark.reason or "unknown")
        elif mark.state == "h":
            final = ledger.Final(t.recipient.member_id, "held_out")
        else:
            final = ledger.Final(t.recipient.member_id, "failed", rules.OUTCOME_UNKNOWN)
        extend = None
        run_coupons = self._campaign_coupons() if mark.state == "c" else None
        if run_coupons is not None and run_coupons.fast:
            code = run_coupons.evidence(t.recipient.member_id)     # written only after WeChat accepted it
            if code is not None:
                final = ledger.Final(t.recipient.member_id, "sent", coupon=code)
                extend = run_coupons.extension([final])
        if self.ledger.close(t.key, text, final, self.clock.now(), extend=extend):
            self.counts[final.state] = self.counts.get(final.state, 0) + 1
        return None

    def _recheck_later(self) -> None:
        """Recipients another attempt holds: that attempt records them, unless it died. Look again
        after its lease ends (a delayed message, so no receive count is spent waiting)."""
        until = max(lease for _r, lease in self.held)
        rest = {**self.body, "recipients": [r.pack() for r, _lease in self.held],
                "chunk": f"{self.body.get('chunk')}?"}
        self.requeue(rest, max(1, min(service.MAX_DELAY, int(until - self.clock.time()) + 1)))

    def _claim(self, group: list[Todo], start: Callable[[Todo], None] | None = None) -> list[Todo]:
        """Mark a group: one conditional UpdateItem each, in parallel; the marked share one group id
        (their outcomes are one item). Returns the claimed ones, to send; skips are recorded.
        `start(t)` is called for each claimed one as soon as its claim returns (in this thread), so
        its WeChat call need not wait for the slowest claim of the group. The group's size is
        complete before this returns, and outcomes are only taken in (go, _finished) after that."""
        group_id = ledger.new_group()
        lease = self._lease_until()
        at = int(self.clock.time())
        template = self.spec.message.template_id if rules.needs_credit(self.medium) else None
        cap = self.spec.limits.frequency_cap_per_day
        day = rules.frequency_day(self.clock.now(), self.spec.schedule.timezone) if cap else None

        def mark_one(t: Todo) -> tuple[Todo, str]:
            mark = ledger.Mark("k" if t.skip else "h" if t.hold else "c", group_id, lease, at, t.skip)
            r = t.recipient
            claim = ledger.Claim(
                r.member_id, t.key, mark, credit=bool(template) and not t.skip,
                frequency=(day, cap) if cap and not t.skip else None, credit_item=t.credit_key,
                replaces=t.replaces, prune=t.prune, hold=t.hold,
                item_attrs=self.ledger.item_attrs(t.key, r.mp_openid, template))
            outcome = self.ledger.claim(claim)
            if outcome == "claimed":
                t.mark, t.group = mark.text(), group_id
            elif outcome.startswith("skip:"):           # marked, then found without a credit: a skip
                t.skip = outcome[5:]
                t.mark, t.group = ledger.Mark("k", group_id, lease, at, t.skip).text(), group_id
                outcome = "claimed"
            return t, outcome

        if len(group) > 1:
            results = (f.result() for f in as_completed([claim_pool().submit(mark_one, t) for t in group]))
        else:
            results = (mark_one(t) for t in group)
        claimed: list[Todo] = []
        for t, outcome in results:
            if outcome == "claimed":
                self.groups.setdefault(group_id, Group(0)).size += 1
                if t.skip:
                    self._final(t, ledger.Final(t.recipient.member_id, "skipped", t.skip, group=group_id))
                elif t.hold:
                    self._final(t, ledger.Final(t.recipient.member_id, "held_out", group=group_id))
                else:
                    claimed.append(t)
                    if start is not None:
                        start(t)
            elif outcome == "marked":                 # another attempt decided first: see what it did
                text, _raw = self.ledger.read_mark(t.key)
                if text is not None:
                    again = self._resume(Todo(t.recipient, t.key, t.credit_key), text)
                    if again is not None:                 # released meanwhile: one more try, alone
                        claimed += self._claim([again], start)
            else:                                     # no_credit | frequency_capped, read consistently
                t.skip, t.replaces, t.hold = outcome, None, False
                claimed += self._claim([t], start)    # marked skipped (a skip mark cannot be refused so)
        return claimed

    def _send(self, r: rules.Recipient, token: Todo) -> SendOutcome:
        """In the pool: call WeChat (retrying only what proves WeChat did not act), then issue the
        coupon if delivered. An unknown outcome is final: the message may be out, so never again."""
        last: WeChatError | None = None
        for attempt in range(1, ATTEMPTS + 1):
            if self.config_error is not None:
                # another call of this chunk met a configuration error: release, do not call
                return SendOutcome(r, token, "retry", None, self.config_error.errcode)
            self.gate.acquire()
            try:
                self._call(r)
                return SendOutcome(r, token, "sent", coupon=self._coupon(r, token))
            except WeChatError as err:
                last = err
                outcome = rules.classify(err.errcode, api=err.api, outcome_unknown=err.outcome_unknown)
            except Exception as err:  # noqa: BLE001
                # not WeChat's answer (the client reports any failure once the request may have been
                # written as OutcomeUnknown), e.g. the token store failed first: nothing sent, retried
                logger.warning("send failed unexpectedly", extra={"error": repr(err)})
                last, outcome = None, rules.Outcome("retry", "unexpected")
            if outcome.state == "skipped":
                return SendOutcome(r, token, "skipped", outcome.reason, last.errcode)
            if outcome.state == "failed":
                if outcome.reason == rules.OUTCOME_UNKNOWN:
                    count("CampaignOutcomeUnknown")
                    logger.warning("send outcome unknown: recorded, never resent",
                                   extra={"member_id": r.member_id, "error": last.errmsg})
                    return SendOutcome(r, token, "failed", outcome.reason, None)
                return SendOutcome(r, token, "failed", outcome.reason, last.errcode)
            if outcome.state == "config":
                self.config_error = self.config_error or last
                return SendOutcome(r, token, "retry", None, last.errcode)
            if attempt < ATTEMPTS:
                self.clock.sleep(rules.backoff(attempt) * self.clock.jitter(0.5, 1.0))
        return SendOutcome(r, token, "retry", None, last.errcode if last else None)

    def _call(self, r: rules.Recipient) -> None:
        m = self.spec.message
        openid = r.openid(self.medium)
        if self.medium == "mp_subscribe":
            self.api.subscribe_send(openid, m.template_id, m.data, m.page)
        elif self.medium == "oa_template":
            mini = {"appid": self.mp_app_id, "pagepath": m.page} if (m.page and self.mp_app_id) else None
            self.api.template_send(openid, m.template_id, m.data, miniprogram=mini)
        else:
            self.api.custom_send_text(openid, m.text)

    def _campaign_coupons(self):
        """The run's coupon (services.campaign_coupons), made on first use; None without one."""
        if not self.spec.coupon_template_id:
            return None
        with self._coupons_lock:              # the pool's threads ask at once: one instance remembers every coupon
            if self._coupons is None:
                from chalicelib.services.campaign_coupons import CampaignCoupons   # only campaigns that attach one
                self._coupons = CampaignCoupons(self.brand, self.campaign.campaign_id, self.run_id,
                                                self.spec.coupon_template_id)
        return self._coupons

    def _coupon(self, r: rules.Recipient, t: Todo | None = None) -> str | None:
        template = self.spec.coupon_template_id
        if not template:
            return None
        run_coupons = self._campaign_coupons()
        if run_coupons.fast and t is not None and t.mark:
            # through the ledger: a derived code, one conditional put; counted with the group. If it
            # cannot be written, the recipient stays claimed: the chunk fails, and whoever closes the
            # claim after its lease finds the coupon (sent, counted then) or not (outcome_unknown)
            claimed_at = datetime.fromtimestamp(ledger.Mark.parse(t.mark).at, timezone.utc)
            return self._retried(lambda: run_coupons.issue(r.member_id, claimed_at, r.touch))
        from chalicelib.services import coupons            # loaded only by campaigns that attach one
        try:
            code = self._retried(lambda: coupons.issue_coupon(
                self.brand, r.member_id, template, source="campaign",
                issue_key=f"campaign:{self.campaign.campaign_id}:{self.run_id}:{r.member_id}"))
        except Exception:  # noqa: BLE001 - the message is out; the coupon was retried, now it is reported
            logger.exception("campaign coupon not issued", extra={"member_id": r.member_id})
            return "error"
        return code or "none"                              # none: out of stock or over the member's limit

    def _retried(self, issue: Callable[[], str | None]) -> str | None:
        """`issue()`, tried COUPON_ATTEMPTS times with backoff; the last failure is raised."""
        for attempt in range(1, COUPON_ATTEMPTS):
            try:
                return issue()
            except Exception:  # noqa: BLE001 - any failure of a coupon write is worth one more try
                self.clock.sleep(rules.backoff(attempt))
        return issue()

    # -- outcomes -------------------------------------------------------------------------------
    def _finished(self, result: SendOutcome) -> None:
        t = result.claim
        if result.state == "retry":
            self.retry_later += 1
            self._release(t)
            return
        self._final(t, ledger.Final(t.recipient.member_id, result.state, result.reason, group=t.group,
                                    errcode=result.errcode, coupon=result.coupon))

    def _release(self, t: Todo) -> None:
        """Give the claim back (credit kept) so a later delivery of the chunk sends it; its group
        then waits for one recipient fewer."""
        released = ledger.Mark("r", t.group, 0, int(self.clock.time()))
        if not self.ledger.release(t.key, t.mark, released):
            logger.warning("a claim changed under us", extra={"member_id": t.recipient.member_id})
        self.counts["retry"] = self.counts.get("retry", 0) + 1
        group = self.groups.get(t.group)
        if group is not None:
            group.size -= 1

    def _final(self, t: Todo, final: ledger.Final) -> None:
        self.groups[t.group].finals.append(final)
        self.counts[final.state] = self.counts.get(final.state, 0) + 1

    def _flush(self, *, force: bool) -> None:
        """Record every group whose recipients all have an outcome (all groups, when forced): one
        item and the tallies, in one transaction."""
        for group_id, group in list(self.groups.items()):
            if group.finals and (force or len(group.finals) >= group.size):
                finals, group.finals = group.finals, []
                for part in self._coupon_parts(finals):
                    extend = self._coupons.extension(part) if self._coupons is not None and self._coupons.fast \
                        else None
                    if not self.ledger.record(group_id, group.part, part, self.clock.now(),
                                              extend=extend):
                        logger.warning("a group part was recorded already", extra={"group": group_id})
                    group.part += 1
                group.size -= len(finals)
                sent = sum(1 for f in finals if f.state == "sent")
                if sent:
                    count("CampaignMessagesSent", sent)
            if group.size <= 0 and not group.finals:
                del self.groups[group_id]

    def _coupon_parts(self, finals: list) -> list[list]:
        """One part, unless the coupons' counters would not fit one transaction (campaign_coupons)."""
        if self._coupons is None or not self._coupons.fast:
            return [finals]
        return self._coupons.parts(finals, fixed_items=1 + len(ledger._counts(finals)))

    # -- stopping early -------------------------------------------------------------------------
    def _should_stop(self) -> str | None:
        campaign = self.campaign_state()
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
        if stop == "paused" and campaign_store.park(self.campaign, self.run_id, "send", rest, _utcnow()):
            logger.info("chunk parked", extra={"left": len(left)})
            return
        self.requeue(rest, None)
