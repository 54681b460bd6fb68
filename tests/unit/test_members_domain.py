"""Identity resolution and attribution rules, on plain data."""
import pytest

from chalicelib.domain.members import (ChannelCode, GuideRef, Shopper, attribute, audience_key, choose_member,
                                       plan_touch)

AT = "2026-11-11T02:00:00Z"
S1 = ChannelCode(scene="S1", store_id="sz", guide_id="g1", source="poster", tags=("vip", "poster"),
                 welcome_coupon_template_id="tpl1", welcome_message="hi")


def test_known_scene_attributes_store_guide_and_source():
    touch = attribute(S1, scene="S1", via="oa", at=AT)
    assert (touch.store_id, touch.guide_id, touch.source, touch.scene, touch.via) == ("sz", "g1", "poster", "S1", "oa")


def test_unknown_scene_still_counts_as_unknown_channel():
    touch = attribute(None, scene="nope", via="oa", at=AT)
    assert (touch.store_id, touch.guide_id, touch.source, touch.scene) == (None, None, "unknown", "nope")


def test_wecom_add_without_state_falls_back_to_the_guide():
    touch = attribute(None, scene=None, via="wecom", at=AT, guide=GuideRef("g1", "sz"))
    assert (touch.store_id, touch.guide_id, touch.source) == ("sz", "g1", "guide")


def test_new_shopper_creates_member_links_every_identity_and_announces_join():
    plan = plan_touch(brand_id="b", shopper=Shopper(oa="o1", unionid="u1"), found={},
                      touch=attribute(S1, scene="S1", via="oa", at=AT), channel=S1, new_member_id="m_new")
    assert plan.create and plan.member_id == "m_new"
    assert set(plan.link) == {("oa", "o1"), ("unionid", "u1")}
    assert plan.tags == ("poster", "vip")
    assert [name for name, _ in plan.events] == ["member.joined"]
    joined = plan.events[0][1]
    assert joined["first_touch"]["store_id"] == "sz" and joined["oa_openid"] == "o1" and joined["unionid"] == "u1"
    assert [name for name, _ in plan.tasks] == ["welcome"]
    assert plan.tasks[0][1]["coupon_template_id"] == "tpl1"


def test_repeat_touch_updates_the_known_member_and_announces_nothing():
    plan = plan_touch(brand_id="b", shopper=Shopper(oa="o1"), found={("oa", "o1"): "m1"},
                      touch=attribute(S1, scene="S1", via="oa", at=AT), channel=S1, new_member_id="m_new")
    assert not plan.create and plan.member_id == "m1"
    assert plan.link == [] and plan.events == [] and plan.tasks == []


def test_unionid_joins_a_mini_program_member_when_they_follow_the_oa():
    plan = plan_touch(brand_id="b", shopper=Shopper(oa="o_oa", unionid="u1"), found={("unionid", "u1"): "m_mp"},
                      touch=attribute(None, scene=None, via="oa", at=AT), channel=None, new_member_id="m_new")
    assert plan.member_id == "m_mp" and not plan.create
    assert plan.link == [("oa", "o_oa")]
    assert plan.fields == {"unionid": "u1", "oa_openid": "o_oa"}


def test_unionid_outranks_an_openid_that_points_elsewhere():
    assert choose_member({("oa", "o1"): "m_oa", ("unionid", "u1"): "m_union"}) == "m_union"
    assert choose_member({("wecom", "w"): "m_w", ("mp", "p"): "m_mp"}) == "m_mp"
    assert choose_member({}) is None


def test_wecom_welcome_code_always_gets_a_welcome_task_but_coupon_only_on_creation():
    found = {("wecom", "wm1"): "m1"}
    plan = plan_touch(brand_id="b", shopper=Shopper(wecom="wm1"), found=found,
                      touch=attribute(S1, scene="S1", via="wecom", at=AT), channel=S1, new_member_id="x",
                      welcome_code="WC")
    assert plan.tasks[0][1]["welcome_code"] == "WC" and plan.tasks[0][1]["coupon_template_id"] is None


def test_a_touch_without_identity_is_refused():
    with pytest.raises(ValueError):
        plan_touch(brand_id="b", shopper=Shopper(), found={}, touch=attribute(None, scene=None, via="oa", at=AT),
                   channel=None, new_member_id="m")


def test_audience_key_spreads_members_over_shards():
    shards = {audience_key("b", f"m_{i}", AT)[0] for i in range(200)}
    assert len(shards) == 16 and all(s.startswith("B#b#AUD#") for s in shards)


def test_mini_program_join_without_coupon_needs_no_follow_up():
    plan = plan_touch(brand_id="b", shopper=Shopper(mp="p1"), found={},
                      touch=attribute(S1, scene="S1", via="mp", at=AT),
                      channel=ChannelCode(scene="S1", store_id="sz", guide_id=None, source="x", welcome_message="hi"),
                      new_member_id="m")
    assert plan.create and plan.tasks == []
