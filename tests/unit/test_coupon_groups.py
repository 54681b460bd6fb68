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


def _run_coupons(issued: dict):
    """CampaignCoupons of a limit-1 template with `issued` (member -> (touch keys, day, valid_until))
    as its issue/evidence calls leave them; nothing read or written."""
    from chalicelib.domain import coupons as rules
    from chalicelib.services.campaign_coupons import CampaignCoupons
    run = CampaignCoupons.__new__(CampaignCoupons)
    run.template = rules.template({"name": "t", "kind": "cash_off", "value": 100, "valid_days_after_claim": 3,
                                   "per_member_limit": 1}, "tpl_1")
    run._issued = issued
    return run


def _finals(members):
    from types import SimpleNamespace
    from chalicelib.domain import coupons as rules
    return [SimpleNamespace(state="sent", coupon=rules.new_code(), member_id=m) for m in members]


def _items(run, part) -> int:
    from chalicelib.storage import campaign_coupons as store
    keys = set().union(*(store.counter_keys(run.template, *run._issued[f.member_id][:2]) for f in part))
    return store.COUNTER_FIXED_ITEMS + len(keys)


def test_a_group_whose_coupons_touch_many_counters_is_cut_into_transactions_of_at_most_100_items():
    from chalicelib.domain.scoreboard import Keys
    members = [f"m{i:03}" for i in range(100)]
    issued = {m: (Keys(f"s{i}", f"g{i}", f"c{i}"), "2026-11-30", "2026-12-03") for i, m in enumerate(members)}
    run, finals = _run_coupons(issued), _finals(members)
    parts = run.parts(finals, fixed_items=3)
    assert len(parts) > 1 and [f for p in parts for f in p] == finals          # all, in order, once
    assert all(3 + _items(run, p) <= 98 for p in parts)
    # each part is as full as it can be: its next member would have crossed the bound
    assert all(3 + _items(run, p + [nxt[0]]) > 98 for p, nxt in zip(parts, parts[1:]))


def test_coupons_of_two_validities_never_share_a_part_and_one_store_shares_one():
    from chalicelib.domain.scoreboard import Keys
    members = [f"m{i:03}" for i in range(100)]
    issued = {m: (Keys("sz", "g1", "c1"), "2026-11-30", "2026-12-03" if i < 60 else "2026-12-04")
              for i, m in enumerate(members)}
    run, finals = _run_coupons(issued), _finals(members)
    parts = run.parts(finals, fixed_items=3)
    assert [len(p) for p in parts] == [60, 40]
    assert _run_coupons({m: (Keys("sz", "g1", "c1"), "2026-11-30", "2026-12-03") for m in members}).parts(
        finals, fixed_items=3) == [finals]
