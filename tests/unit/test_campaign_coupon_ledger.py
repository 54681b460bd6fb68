"""Campaign coupons through the delivery ledger (services.campaign_coupons), on the sender's seam:
a coupon only for `sent`, once per run per member whatever is redelivered, counted with the group's
record; a dead claimant's coupon proves its send (closed `sent`, counted in the close), no coupon
means an unknown outcome and none is issued then. Codes are derived, valid at the till, unguessable."""
from __future__ import annotations

from collections import Counter

from chalicelib.domain import campaigns as rules
from chalicelib.domain import coupons as coupon_rules
from chalicelib.services import campaign_coupons
from chalicelib.storage.ledger_memory import MemoryLedger
from chalicelib.wechat.client import OutcomeUnknown, WeChatError
from tests.unit.test_sender_seam import (NOW, TEMPLATE, Api, FakeClock, chunk, credit_all, held_by_another,
                                         recipients)


class FakeCoupons:
    """What the sender asks of CampaignCoupons, recording it (the DynamoDB side has integration tests)."""
    fast = True

    def __init__(self, written=()):
        self.issued: Counter = Counter()
        self.written = set(written)          # members whose coupon exists already (a dead claimant wrote it)
        self.extended: list[list] = []

    def code(self, member_id):
        return coupon_rules.derived_code(b"k", "c1", "once", member_id)

    def issue(self, member_id, claimed_at, touch=None):
        assert claimed_at.tzinfo is not None and abs((claimed_at - NOW).total_seconds()) < 600
        self.issued[member_id] += 1
        return self.code(member_id)

    def evidence(self, member_id):
        return self.code(member_id) if member_id in self.written else None

    def parts(self, finals, fixed_items):
        return [finals]

    def extension(self, finals):
        issued = [f.member_id for f in finals if f.state == "sent" and f.coupon]
        if not issued:
            return None
        self.extended.append(issued)
        return lambda tx, key: None


def spec_with_coupon(**limits):
    return rules.spec({"name": "t", "message": {"medium": "mp_subscribe", "template_id": TEMPLATE,
                                                "data": {"thing1": {"value": "x"}}},
                       "limits": limits, "audience": {"holdout_percent": 0}, "coupon_template_id": "tpl_x"},
                      brand_timezone="Asia/Shanghai", now=NOW)


def run_with(ledger, api, people, coupons, **kw):
    run = chunk(ledger, api, people, spec_=spec_with_coupon(), **kw)
    run._coupons = coupons
    return run


def test_derived_codes_read_like_drawn_ones_and_differ_per_member_run_and_key():
    code = coupon_rules.derived_code(b"brand key", "cmp_1", "once", "m_1")
    assert coupon_rules.normalize_code(code) == code and len(code) == coupon_rules.CODE_LENGTH
    assert code == coupon_rules.derived_code(b"brand key", "cmp_1", "once", "m_1")
    others = {coupon_rules.derived_code(b"brand key", "cmp_1", "once", "m_2"),
              coupon_rules.derived_code(b"brand key", "cmp_1", "2025-03-02", "m_1"),
              coupon_rules.derived_code(b"other key", "cmp_1", "once", "m_1")}
    assert code not in others and len(others) == 3
    assert all(coupon_rules.normalize_code(c) == c for c in others)


def test_which_templates_take_the_ledger_path():
    base = coupon_rules.template({"name": "x", "kind": "cash_off", "value": 100, "valid_days_after_claim": 7},
                                 "tpl_a", now=NOW)
    assert campaign_coupons.fast_path(base)
    stocked = coupon_rules.template({"name": "x", "kind": "cash_off", "value": 100, "valid_days_after_claim": 7,
                                     "total_stock": 10}, "tpl_b", now=NOW)
    assert not campaign_coupons.fast_path(stocked)


def test_a_coupon_only_for_sent_once_per_member_and_counted_with_its_group():
    ledger, people = MemoryLedger(), recipients(60)
    credit_all(ledger, people[:55])
    api = Api(lambda openid, n: OutcomeUnknown("network, outcome unknown: ReadTimeoutError", "x")
              if openid == "o001" else WeChatError(43101, "user refuse to accept the msg") if openid == "o002"
              else None)
    coupons = FakeCoupons()
    run_with(ledger, api, people, coupons).go()
    run_with(ledger, api, people, coupons).go()                  # SQS delivers the chunk again
    sent = {m for m, e in ledger.outcomes().items() if e[0] == "sent"}
    assert len(sent) == 53 and "m001" not in sent and "m002" not in sent
    assert set(coupons.issued) == sent and max(coupons.issued.values()) == 1
    assert {m: e[3] for m, e in ledger.outcomes().items() if e[0] == "sent"} == {m: coupons.code(m) for m in sent}
    assert all(e[3] is None for e in ledger.outcomes().values() if e[0] != "sent")
    # every coupon handed to exactly one group record (its counters and events), none twice
    counted = [m for part in coupons.extended for m in part]
    assert sorted(counted) == sorted(sent) and len(ledger.extended) == len(coupons.extended)


def test_a_dead_claimant_whose_coupon_exists_is_closed_sent_and_counted_then():
    ledger, clock, people = MemoryLedger(), FakeClock(), recipients(3)
    credit_all(ledger, people)
    _key, lease = held_by_another(ledger, clock, "m001")
    coupons, api = FakeCoupons(written={"m001"}), Api()
    clock.t = lease + 1                                          # the claimant died after its send and coupon
    run_with(ledger, api, people, coupons, clock=clock).go()
    assert "o001" not in api.calls and coupons.issued["m001"] == 0
    assert ledger.outcomes()["m001"] == ["sent", None, None, coupons.code("m001")]
    assert ["m001"] in coupons.extended and ledger.tallies["sent"] == 3


def test_a_dead_claimant_without_a_coupon_is_an_unknown_outcome_and_gets_none():
    ledger, clock, people = MemoryLedger(), FakeClock(), recipients(2)
    credit_all(ledger, people)
    _key, lease = held_by_another(ledger, clock, "m000")
    coupons, api = FakeCoupons(), Api()
    clock.t = lease + 1
    run_with(ledger, api, people, coupons, clock=clock).go()
    assert ledger.outcomes()["m000"][:2] == ["failed", "outcome_unknown"] and ledger.outcomes()["m000"][3] is None
    assert coupons.issued["m000"] == 0 and all("m000" not in part for part in coupons.extended)
