"""The sender on its seam (services.sending: LedgerStore + Clock + injected requeue and campaign
state), on the in-memory ledger (storage.ledger_memory): credits taken once, a redelivered chunk
sends nothing twice, a claim held by a live attempt is rechecked later and closed as
outcome_unknown once its claimant is gone, the rate gate never lends more than the limit per
second, the deadline hands the rest on, transient answers back off with jitter."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from chalicelib.domain import campaigns as rules
from chalicelib.services import sending
from chalicelib.storage import ledger as real
from chalicelib.storage.ledger_memory import MemoryLedger
from chalicelib.wechat.client import OutcomeUnknown, WeChatError

NOW = datetime(2025, 3, 1, 2, 0, tzinfo=timezone.utc)
TEMPLATE = "TPL_1"


class FakeClock(sending.Clock):
    """Time moves only when someone sleeps (or the test says so); sleeps and jitter are recorded."""

    def __init__(self, start: datetime = NOW):
        self.t = start.timestamp()
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, timezone.utc)

    def time(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append(seconds)
            self.t += seconds

    def jitter(self, low: float, high: float) -> float:
        return high                     # the top of the range, so the test knows the exact wait


class Api:
    def __init__(self, answer=lambda openid, n: None):
        self.answer, self.calls = answer, Counter()
        self.lock = threading.Lock()

    def _call(self, openid):
        with self.lock:
            self.calls[openid] += 1
            n = self.calls[openid]
        failure = self.answer(openid, n)
        if failure is not None:
            raise failure
        return {"errcode": 0}

    def custom_send_text(self, openid, text):
        return self._call(openid)

    def subscribe_send(self, openid, template_id, data, page):
        return self._call(openid)


def spec(medium="mp_subscribe", holdout=0, **limits):
    message = ({"medium": medium, "template_id": TEMPLATE, "data": {"thing1": {"value": "x"}}}
               if medium == "mp_subscribe" else {"medium": medium, "text": "hello"})
    return rules.spec({"name": "t", "message": message, "limits": limits, "audience": {"holdout_percent": holdout}},
                      brand_timezone="Asia/Shanghai", now=NOW)


def recipients(n: int, medium="mp_subscribe") -> list[rules.Recipient]:
    if medium == "mp_subscribe":
        return [rules.Recipient(f"m{i:03d}", f"o{i:03d}") for i in range(n)]
    return [rules.Recipient(f"m{i:03d}", None, f"o{i:03d}", True) for i in range(n)]


def chunk(ledger: MemoryLedger, api: Api, people, *, spec_=None, clock=None, remaining=lambda: 120.0,
          requeued=None, gate=None):
    body = {"brand_id": "b1", "campaign_id": "c1", "run_id": "once", "chunk": "0",
            "recipients": [r.pack() for r in people]}
    requeued = requeued if requeued is not None else []
    return sending.ChunkRun(SimpleNamespace(brand_id="b1"), SimpleNamespace(campaign_id="c1"),
                            spec_ or spec(), "once", body, api, remaining, mp_app_id=None, ledger_store=ledger,
                            clock=clock or FakeClock(), gate=gate,
                            requeue=lambda b, delay: requeued.append((b, delay)),
                            campaign_state=lambda: SimpleNamespace(state="running"))


def credit_all(ledger: MemoryLedger, people, n: int = 1) -> None:
    for r in people:
        ledger.credit(ledger.claim_item(r.member_id, r.mp_openid, TEMPLATE), n)


@pytest.fixture(autouse=True)
def no_real_backoff(monkeypatch):
    monkeypatch.setattr(sending, "COUPON_ATTEMPTS", 1)



def held_by_another(ledger, clock, member_id: str, lease_seconds: float = 60) -> tuple:
    """Another attempt claimed `member_id` (its credit taken) and holds it for `lease_seconds`; returns
    the claim item's key and the lease's end."""
    key = ledger.claim_item(member_id, "o" + member_id[1:], TEMPLATE)
    lease = clock.time() + lease_seconds
    mark = real.Mark("c", real.new_group(), lease, int(clock.time()))
    assert ledger.claim(real.Claim(member_id, key, mark, credit=True)) == "claimed"
    return key, lease

def test_each_credit_is_taken_once_and_a_redelivered_chunk_sends_nobody_twice():
    ledger, api, people = MemoryLedger(), Api(), recipients(120)
    credit_all(ledger, people[:100])
    chunk(ledger, api, people).go()
    chunk(ledger, api, people).go()                                     # SQS delivers the chunk again
    assert len(api.calls) == 100 and max(api.calls.values()) == 1
    outcomes = ledger.outcomes()                                        # raises if anyone is recorded twice
    assert Counter((e[0], e[1]) for e in outcomes.values()) == {("sent", None): 100, ("skipped", "no_credit"): 20}
    assert ledger.tallies == {"sent": 100, "skipped:no_credit": 20}
    assert all(ledger.items[ledger.claim_item(r.member_id, r.mp_openid, TEMPLATE)]["credits"] == 0
               for r in people[:100])
    # one conditional write per recipient, the outcomes in groups of at most GROUP
    assert ledger.writes == 120 and all(len(p) <= sending.GROUP for p in ledger.parts.values())


def test_an_unknown_outcome_keeps_its_credit_consumed_and_is_never_sent_again():
    ledger, people = MemoryLedger(), recipients(10)
    credit_all(ledger, people)
    api = Api(lambda openid, n: OutcomeUnknown("network, outcome unknown: ReadTimeoutError", "x")
              if openid == "o003" else None)
    run = chunk(ledger, api, people)
    run.go()
    chunk(ledger, api, people).go()
    assert api.calls["o003"] == 1 and run.retry_later == 0
    assert ledger.outcomes()["m003"][:2] == ["failed", "outcome_unknown"]
    assert ledger.items[ledger.claim_item("m003", "o003", TEMPLATE)]["credits"] == 0


def test_the_frequency_cap_is_counted_in_the_claim_and_skips_once_reached():
    ledger, people = MemoryLedger(), recipients(5, "oa_custom")
    for r in people[:2]:                                                # two already had today's message
        ledger.items[ledger.claim_item(r.member_id, None, None)] = {real.day_name("2025-03-01"): 1}
    run = chunk(ledger, Api(), people, spec_=spec("oa_custom", frequency_cap_per_day=1))
    run.go()
    outcomes = ledger.outcomes()
    assert {m for m, e in outcomes.items() if e[0] == "sent"} == {"m002", "m003", "m004"}
    assert {m for m, e in outcomes.items() if e[1] == "frequency_capped"} == {"m000", "m001"}
    assert all(ledger.items[ledger.claim_item(r.member_id, None, None)][real.day_name("2025-03-01")] == 1
               for r in people)


def test_a_claim_held_by_a_live_attempt_is_rechecked_after_its_lease_then_closed_as_unknown():
    ledger, clock, people = MemoryLedger(), FakeClock(), recipients(3)
    credit_all(ledger, people)
    key, lease = held_by_another(ledger, clock, "m001")            # still within its lease
    api, requeued = Api(), []
    chunk(ledger, api, people, clock=clock, requeued=requeued).go()
    assert "o001" not in api.calls and set(api.calls) == {"o000", "o002"}
    (body, delay), = requeued                                           # looked at again after the lease
    assert [r["m"] for r in body["recipients"]] == ["m001"] and body["chunk"] == "0?" and 60 <= delay <= 62
    # the claimant died without recording m001: after the lease the recheck closes it, never sends it
    clock.t = lease + 1
    chunk(ledger, api, [rules.Recipient.unpack(d) for d in body["recipients"]], clock=clock).go()
    assert "o001" not in api.calls
    assert ledger.outcomes()["m001"][:2] == ["failed", "outcome_unknown"]
    assert ledger.mark_of(key).state == "f" and ledger.items[key]["credits"] == 0
    assert ledger.tallies == {"sent": 2, "failed:outcome_unknown": 1}


def test_a_held_claim_its_claimant_recorded_is_left_alone_after_the_lease():
    ledger, clock, people = MemoryLedger(), FakeClock(), recipients(1)
    credit_all(ledger, people)
    key = ledger.claim_item("m000", "o000", TEMPLATE)
    group = real.new_group()
    mark = real.Mark("c", group, clock.time() - 1, int(clock.time()) - 100)
    ledger.claim(real.Claim("m000", key, mark, credit=True))
    ledger.record(group, 0, [real.Final("m000", "sent", group=group)], clock.now())
    api = Api()
    chunk(ledger, api, people, clock=clock).go()
    assert not api.calls and ledger.tallies == {"sent": 1} and ledger.mark_of(key).state == "c"


def test_the_rate_gate_never_lends_more_than_the_limit_in_one_second():
    clock = FakeClock()
    taken: Counter = Counter()

    def reserve(brand_id, campaign_id, second, want, limit, now):
        if taken[second] + want > limit:
            return False
        taken[second] += want
        return True

    gate = sending.RateGate("b1", "c1", 25, clock=clock, reserve=reserve)
    handed: Counter = Counter()
    for _ in range(100):
        gate.acquire()
        handed[int(clock.time())] += 1
    assert max(handed.values()) <= 25 and max(taken.values()) <= 25
    assert sum(handed.values()) == 100 and len(handed) >= 4             # it waited for new seconds
    assert clock.sleeps and all(0 < s <= 1 for s in clock.sleeps)


def test_the_deadline_hands_the_unclaimed_rest_on_and_claims_nothing_of_it():
    ledger, people = MemoryLedger(), recipients(300)
    credit_all(ledger, people)
    left = {"n": 3}

    def remaining() -> float:                # plenty for the first blocks, then below the runway
        left["n"] -= 1
        return 120.0 if left["n"] > 0 else 1.0

    requeued: list = []
    api = Api()
    chunk(ledger, api, people, remaining=remaining, requeued=requeued).go()
    (body, delay), = requeued
    rest = {d["m"] for d in body["recipients"]}
    assert delay is None and body["chunk"] == "0+" and rest
    assert rest.isdisjoint(ledger.outcomes()) and len(rest) + len(ledger.outcomes()) == 300
    assert all(ledger.mark_of(ledger.claim_item(m, f"o{m[1:]}", TEMPLATE)) is None for m in rest)
    assert {f"m{o[1:]}" for o in api.calls}.isdisjoint(rest)


def test_a_transient_answer_backs_off_with_jitter_then_releases_the_claim_with_its_credit():
    ledger, clock, people = MemoryLedger(), FakeClock(), recipients(1)
    credit_all(ledger, people)
    api = Api(lambda openid, n: WeChatError(-1, "system busy", "cgi-bin/message/subscribe/send"))
    run = chunk(ledger, api, people, clock=clock)
    run.go()
    assert api.calls["o000"] == sending.ATTEMPTS and run.retry_later == 1
    # waits between attempts: backoff(1), backoff(2), at the top of the jitter range
    assert clock.sleeps == [rules.backoff(1), rules.backoff(2)]
    key = ledger.claim_item("m000", "o000", TEMPLATE)
    assert ledger.mark_of(key).state == "r" and ledger.items[key]["credits"] == 0 and not ledger.outcomes()
    # the chunk's next delivery claims it again without a second credit and sends it
    ok = Api()
    chunk(ledger, ok, people, clock=clock).go()
    assert ok.calls["o000"] == 1 and ledger.outcomes()["m000"][0] == "sent" and ledger.items[key]["credits"] == 0


def test_with_a_cap_a_credit_channel_marks_the_reach_item_and_takes_the_credit_in_a_second_write():
    ledger, people = MemoryLedger(), recipients(4)
    credit_all(ledger, people[:3])
    # m002's prefetch saw a credit that is gone by the time of its claim (taken elsewhere meanwhile)
    real_prefetch = ledger.prefetch

    def prefetch(keys, credit_keys, day, now):
        seen = real_prefetch(keys, credit_keys, day, now)
        ledger.items[ledger.claim_item("m002", "o002", TEMPLATE)]["credits"] = 0
        seen["m002"].credits = 1
        return seen

    ledger.prefetch = prefetch
    api = Api()
    chunk(ledger, api, people, spec_=spec("mp_subscribe", frequency_cap_per_day=2)).go()
    assert set(api.calls) == {"o000", "o001"}
    outcomes = ledger.outcomes()
    assert outcomes["m002"][:2] == ["skipped", "no_credit"] and outcomes["m003"][:2] == ["skipped", "no_credit"]
    day = real.day_name("2025-03-01")
    reach = {r.member_id: ledger.items.get(ledger.claim_item(r.member_id, None, None), {}) for r in people}
    assert [reach[m].get(day, 0) for m in ("m000", "m001", "m002", "m003")] == [1, 1, 0, 0]   # m002 given back
    assert all(ledger.mark_of(ledger.claim_item(m, None, None)) is not None for m in reach)
    assert [ledger.items[ledger.claim_item(f"m00{i}", f"o00{i}", TEMPLATE)]["credits"] for i in range(3)] == [0, 0, 0]
    # two 1-WRU writes per sent recipient (mark + cap on the reach item, then the credit), never a transaction
    assert ledger.writes == 2 + 2 + 2 + 1


def test_the_holdout_is_drawn_among_the_reachable_the_same_on_a_redelivery_and_takes_no_credit():
    ledger, people = MemoryLedger(), recipients(400)
    credit_all(ledger, people[:300])                                    # 100 cannot be reached: no credit
    api = Api()
    chunk(ledger, api, people, spec_=spec(holdout=20)).go()
    chunk(ledger, api, people, spec_=spec(holdout=20)).go()             # redelivered: nobody moves
    outcomes = ledger.outcomes()
    held = {m for m, e in outcomes.items() if e[0] == "held_out"}
    expected = {r.member_id for r in people[:300] if rules.held_out("c1", r.member_id, 20)}
    assert held == expected and 40 <= len(held) <= 80                   # ~20 % of the 300 reachable
    assert {m for m, e in outcomes.items() if e[1] == "no_credit"} == {r.member_id for r in people[300:]}
    assert {f"m{o[1:]}" for o in api.calls}.isdisjoint(held) and len(api.calls) == 300 - len(held)
    assert all(ledger.items[ledger.claim_item(m, f"o{m[1:]}", TEMPLATE)]["credits"] == 1 for m in held)
    assert ledger.tallies["held_out"] == len(held) and ledger.tallies["sent"] == 300 - len(held)
