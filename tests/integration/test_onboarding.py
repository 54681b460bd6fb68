"""Onboarding through HTTP on the local stack: WeChat callbacks and the mini-program, end to end."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import requests

from siyu_dev import phone


def test_store_qr_subscribe_creates_member_attributed_to_store_guide_and_channel(brand, bus):
    r = brand.subscribe("o_alice", "S1")
    assert r.status_code == 200 and r.text == "success"
    member = brand.member(openid="o_alice")
    assert member["first_touch"]["store_id"] == "sz"
    assert member["first_touch"]["guide_id"] == "g1"
    assert member["first_touch"]["source"] == "counter_poster"
    assert member["first_touch"]["scene"] == "S1"
    assert member["last_touch"] == member["first_touch"]
    assert member["tags"] == ["poster", "sz"]
    assert member["oa_subscribed"] is True
    assert member["coupons"] == []
    joined = bus.events(brand.brand_id, "member.joined")
    assert [e["detail"]["member_id"] for e in joined] == [member["member_id"]]


def test_retried_subscribe_three_times_in_sequence_creates_one_member_and_one_event(brand, bus):
    created = int(time.time())
    for _ in range(3):
        r = brand.subscribe("o_retry", "S1", create_time=created)
        assert r.status_code == 200 and r.text == "success"
    member = brand.member(openid="o_retry")
    assert member["touches"] == 1
    assert len(bus.events(brand.brand_id, "member.joined")) == 1


def test_retried_subscribe_three_times_concurrently_creates_one_member_and_one_event(brand, bus):
    created = int(time.time())
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: brand.subscribe("o_race", "S1", create_time=created), range(3)))
    assert [a.status_code for a in answers] == [200, 200, 200]
    member = brand.member(openid="o_race")
    assert member["touches"] == 1
    assert len(bus.events(brand.brand_id, "member.joined")) == 1


def test_concurrent_first_scans_by_one_shopper_create_one_member(brand, bus):
    sessions = [brand.mp_session("o_mp_twice", "u_twice") for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda s: brand.api.call("POST", f"/mp/{brand.brand_id}/scan", s,
                                                         {"scene": "S2"}), sessions))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert len({a.json()["member_id"] for a in answers}) == 1
    assert sum(a.json()["created"] for a in answers) == 1
    assert brand.member(unionid="u_twice")["touches"] == 4
    assert len(bus.events(brand.brand_id, "member.joined")) == 1


def test_scan_moves_last_touch_and_never_first_touch(brand):
    brand.subscribe("o_bob", "S1")
    msg = phone.oa_scan(app_username="gh", openid="o_bob", scene="S2", create_time=int(time.time()) + 1)
    assert brand.post_callback("oa", msg, openid="o_bob").status_code == 200
    member = brand.member(openid="o_bob")
    assert member["first_touch"]["store_id"] == "sz" and member["last_touch"]["store_id"] == "sh"
    assert member["last_touch"]["scene"] == "S2"
    assert member["tags"] == ["poster", "sh", "sz"]


def test_unknown_scene_still_creates_the_member_as_unknown_channel(brand):
    assert brand.subscribe("o_lost", "NOPE").status_code == 200
    touch = brand.member(openid="o_lost")["first_touch"]
    assert touch["source"] == "unknown" and touch["scene"] == "NOPE" and touch["store_id"] is None


def test_plain_subscribe_without_scene_creates_member(brand):
    msg = phone.oa_subscribe(app_username="gh", openid="o_plain", scene=None, create_time=int(time.time()))
    assert brand.post_callback("oa", msg, openid="o_plain", mode="plain").status_code == 200
    assert brand.member(openid="o_plain")["first_touch"]["scene"] is None


def test_compat_mode_is_accepted(brand):
    msg = phone.oa_subscribe(app_username="gh", openid="o_compat", scene="S1", create_time=int(time.time()))
    assert brand.post_callback("oa", msg, openid="o_compat", mode="compat").status_code == 200
    assert brand.member(openid="o_compat")["first_touch"]["store_id"] == "sz"


def test_mini_program_first_then_oa_follow_is_one_member_by_unionid(brand, bus):
    session = brand.mp_session("o_mp_carol", "u_carol")
    r = brand.api.call("POST", f"/mp/{brand.brand_id}/scan", session, {"scene": "S2"})
    assert r.status_code == 200 and r.json()["created"] is True
    brand.register_user("o_oa_carol", "u_carol")
    assert brand.subscribe("o_oa_carol", "S1").status_code == 200
    by_oa = brand.member(openid="o_oa_carol")
    by_mp = brand.member(openid="o_mp_carol")
    assert by_oa["member_id"] == by_mp["member_id"] == r.json()["member_id"]
    assert by_oa["first_touch"]["store_id"] == "sh" and by_oa["last_touch"]["store_id"] == "sz"
    assert by_oa["oa_openid"] == "o_oa_carol" and by_oa["mp_openid"] == "o_mp_carol"
    assert len(bus.events(brand.brand_id, "member.joined")) == 1


def test_unsubscribe_keeps_the_member_and_records_the_status(brand):
    brand.subscribe("o_dan", "S1")
    msg = phone.oa_unsubscribe(app_username="gh", openid="o_dan", create_time=int(time.time()) + 1)
    assert brand.post_callback("oa", msg, openid="o_dan").status_code == 200
    member = brand.member(openid="o_dan")
    assert member["oa_subscribed"] is False and member["first_touch"]["store_id"] == "sz"


def test_text_message_is_stored_once_and_answered_with_the_encrypted_auto_reply(brand):
    msg = phone.oa_text(app_username="gh_test", openid="o_eve", content="hello", create_time=int(time.time()),
                        msg_id=1234567890123)
    r = brand.post_callback("oa", msg, openid="o_eve")
    assert r.status_code == 200
    cfg = brand.app("oa")
    reply = phone.decrypt_reply(r.content, token=cfg["token"], encoding_aes_key=cfg["encoding_aes_key"],
                                receive_id=cfg["app_id"])
    assert reply["Content"] == "thanks, we got it" and reply["ToUserName"] == "o_eve"
    from chalicelib.storage.models import Message
    stored = list(Message.query(f"B#{brand.brand_id}#MSG#o_eve"))
    brand.post_callback("oa", msg, openid="o_eve")          # WeChat's retry
    assert len(stored) == 1 and stored[0].content == "hello"
    assert len(list(Message.query(f"B#{brand.brand_id}#MSG#o_eve"))) == 1


def test_wecom_add_attributes_to_the_guide_and_sends_the_welcome_message(brand, stack):
    cfg = brand.app("wecom")
    msg = phone.wecom_add_external_contact(corp_id=cfg["corp_id"], user_id="li", external_userid="wm_frank",
                                           create_time=int(time.time()), state="S1", welcome_code="WC_frank")
    assert brand.post_callback("wecom", msg).status_code == 200
    member = brand.member(external_userid="wm_frank")
    assert member["first_touch"]["guide_id"] == "g1" and member["first_touch"]["via"] == "wecom"
    assert member["wecom_guides"] == ["li"]
    stack.pump.idle()
    sent = requests.get(f"{stack.wechat_url}/__sim/sent", timeout=10).json()
    welcomes = [s for s in sent if s["api"] == "cgi-bin/externalcontact/send_welcome_msg"
                and s["touser"] == "WC_frank"]
    assert len(welcomes) == 1 and "welcome!" in str(welcomes[0]["data"])


def test_wecom_readd_without_state_falls_back_to_the_guide(brand):
    cfg = brand.app("wecom")
    msg = phone.wecom_add_external_contact(corp_id=cfg["corp_id"], user_id="li", external_userid="wm_gina",
                                           create_time=int(time.time()))
    assert brand.post_callback("wecom", msg).status_code == 200
    touch = brand.member(external_userid="wm_gina")["first_touch"]
    assert touch["guide_id"] == "g1" and touch["store_id"] == "sz" and touch["source"] == "guide"


def test_url_verification_echoes_for_oa_and_decrypts_for_wecom(brand):
    oa = brand.app("oa")
    q = phone.build_verification(token=oa["token"], echostr="echo123")
    r = brand.api.call("GET", f"/wechat/{brand.brand_id}/oa", params=q)
    assert r.status_code == 200 and r.text == "echo123"
    wc = brand.app("wecom")
    q = phone.build_verification(token=wc["token"], echostr="plain-echo", receive_id=wc["corp_id"],
                                 encoding_aes_key=wc["encoding_aes_key"], wecom=True)
    r = brand.api.call("GET", f"/wechat/{brand.brand_id}/wecom", params=q)
    assert r.status_code == 200 and r.text == "plain-echo"


def test_mini_program_json_message_push_is_accepted(brand):
    msg = phone.mp_subscribe_msg_popup(app_username="gh_mp", openid="o_json", create_time=int(time.time()),
                                       accepted=["tpl-a"], rejected=[])
    r = brand.post_callback("mp", msg, fmt="json")
    assert r.status_code == 200 and r.text == "success"


def test_login_code_is_one_time(brand, stack):
    code = requests.post(f"{stack.wechat_url}/__sim/codes", json={"openid": "o_h", "app_id": brand.app("mp")["app_id"]},
                         timeout=10).json()["code"]
    first = brand.api.call("POST", f"/mp/{brand.brand_id}/login", json_body={"code": code})
    again = brand.api.call("POST", f"/mp/{brand.brand_id}/login", json_body={"code": code})
    assert first.status_code == 200
    assert again.status_code == 401 and again.json()["error"]["code"] == "code_used"
