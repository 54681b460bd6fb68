"""Limit codes (domain.coupons.limited_by_code / limit_code) and the first touch a coupon campaign's
chunk carries (domain.campaign_runs.Recipient.touch, packed by the planner)."""
from __future__ import annotations

from types import SimpleNamespace

from chalicelib.domain import campaign_runs as c
from chalicelib.domain import coupons as rules
from chalicelib.services import planning


def _template(limit: int) -> rules.Template:
    return rules.template({"name": "t", "kind": "cash_off", "value": 100, "valid_days_after_claim": 3,
                           "per_member_limit": limit}, "tpl_1")


def test_only_a_limit_of_one_is_carried_by_the_code():
    assert rules.limited_by_code(_template(1)) and not rules.limited_by_code(_template(2))


def test_a_limit_code_is_one_per_template_and_member_and_reads_like_any_code():
    a = rules.limit_code(b"k", "tpl_1", "m_1")
    assert a == rules.limit_code(b"k", "tpl_1", "m_1") and rules.normalize_code(a) == a
    others = {rules.limit_code(b"k", "tpl_2", "m_1"), rules.limit_code(b"k", "tpl_1", "m_2"),
              rules.limit_code(b"other", "tpl_1", "m_1")}
    assert a not in others and len(others) == 3


def test_a_recipient_carries_its_first_touch_through_the_chunk_or_nothing():
    with_touch = c.Recipient("m_1", "o_1", touch=("sz", None, "S1"))
    assert with_touch.pack()["t"] == ["sz", None, "S1"] and c.Recipient.unpack(with_touch.pack()) == with_touch
    bare = c.Recipient("m_2", "o_2")
    assert "t" not in bare.pack() and c.Recipient.unpack(bare.pack()).touch is None
    assert c.Recipient.unpack({"m": "m_3", "t": "garbage"}).touch is None


def test_the_planner_packs_the_first_touch_only_for_a_campaign_with_a_coupon():
    touch = SimpleNamespace(store_id="sz", guide_id="g_1", scene="S2")
    member = SimpleNamespace(member_id="m_1", mp_openid="o_1", oa_openid=None, oa_subscribed=None, first_touch=touch)
    assert planning._recipient(member, True).touch == ("sz", "g_1", "S2")
    assert planning._recipient(member).touch is None
    untouched = SimpleNamespace(**{**vars(member), "first_touch": None})
    assert planning._recipient(untouched, True).touch == (None, None, None)


def test_a_limit_code_coupon_is_kept_while_its_template_can_issue_again():
    """The coupon under a limit code is the member's limit (no claims counter is kept for it): the
    TTL must not delete it while the template could issue another, or a later run or claim would give
    the member a second. Relative validity: any later issue is possible, so no TTL; a fixed validity
    or a counted limit: the usual retention."""
    from datetime import datetime, timedelta, timezone
    until = datetime(2026, 12, 31, tzinfo=timezone.utc)
    assert rules.kept_until(_template(1), until, 30) is None
    assert rules.kept_until(_template(2), until, 30) == until + timedelta(days=30)
    fixed = rules.template({"name": "t", "kind": "cash_off", "value": 100, "valid_until": "2026-12-31T00:00:00Z",
                            "per_member_limit": 1}, "tpl_2")
    assert rules.kept_until(fixed, until, 30) == until + timedelta(days=30)
