"""A campaign with a coupon claims and records in groups of COUPON_GROUP (each group's record adds
its coupons' counters: a set of items per group whatever its size); one without, GROUP."""
from __future__ import annotations

from chalicelib.services import sending
from chalicelib.storage.ledger_memory import MemoryLedger
from tests.unit.test_campaign_coupon_ledger import FakeCoupons, run_with
from tests.unit.test_sender_seam import Api, chunk, credit_all, no_real_backoff, recipients  # noqa: F401


def test_a_coupon_campaign_records_its_coupons_in_groups_of_coupon_group():
    ledger, people = MemoryLedger(), recipients(150)
    credit_all(ledger, people)
    coupons = FakeCoupons()
    run_with(ledger, Api(), people, coupons).go()
    sizes = sorted(len(p) for p in ledger.parts.values())
    assert sum(sizes) == 150 and max(sizes) == sending.COUPON_GROUP > sending.GROUP
    assert len(coupons.extended) == len(ledger.parts) == 2                # one set of counters per group
    assert sorted(m for part in coupons.extended for m in part) == sorted(r.member_id for r in people)


def test_a_campaign_without_a_coupon_keeps_groups_of_group():
    ledger, people = MemoryLedger(), recipients(150)
    credit_all(ledger, people)
    chunk(ledger, Api(), people).go()
    assert max(len(p) for p in ledger.parts.values()) == sending.GROUP
