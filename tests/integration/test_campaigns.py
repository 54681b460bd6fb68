"""Campaigns on the local stack: schedule → planner → sender → WeChat simulator, exactly once per member.

Fires are forced through the local Scheduler stand-in (`stack.scheduler.fire`), as EventBridge
Scheduler would deliver them (duplicates included); everything after that is the pump calling the
real handlers with Lambda-shaped SQS events.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from tests.integration.campaign_fixtures import (TEMPLATE, add_members, campaign, clear_fault, create_campaign,
                                                 fault, grant_credits, sent_to, sim, wait_for)
from tests.integration.conftest import table_items

SUBSCRIBE_SEND = "cgi-bin/message/subscribe/send"


@pytest.fixture
def no_faults(stack):
    yield
    clear_fault(stack, SUBSCRIBE_SEND)


def fire(stack, created: dict, times: int = 1) -> None:
    stack.scheduler.fire(created["schedule"]["name"], times=times)


def completed(c: dict) -> bool:
    return c["state"] == "completed"


def test_a_campaign_to_50_members_reaches_exactly_the_30_with_a_credit(stack, brand, bus):
    # 50 members spread over the 16 audience shards, a chunk per non-empty shard, as 500 did (PAGE is 400)
    openids = add_members(brand, 50)
    credited = openids[:30]
    grant_credits(brand, credited)
    created = create_campaign(brand, audience={"tags_any": ["vip"], "store_ids": ["sz"]})
    assert created["state"] == "scheduled"
    fire(stack, created)
    done = wait_for(brand, created["campaign_id"], completed, timeout=120)

    sent = sent_to(stack, brand)
    per_member = Counter(s["touser"] for s in sent)
    assert set(per_member) == set(credited) and max(per_member.values()) == 1
    assert {s["template_id"] for s in sent} == {TEMPLATE}
    assert sent[0]["data"] == {"thing1": {"value": "10 off"}}
    stats = done["stats"]
    assert (stats["targeted"], stats["sent"], stats["failed"]) == (50, 30, 0)
    assert stats["skipped"]["no_credit"] == 20 and sum(stats["skipped"].values()) == 20
    # the credits were consumed: a second campaign to the same people skips them all for no_credit
    events = bus.events(brand.brand_id, "campaign.completed")
    assert len(events) == 1 and events[0]["detail"]["stats"]["sent"] == 30
    skipped = brand.admin("GET", f"/campaigns/{created['campaign_id']}/deliveries?state=skipped&limit=500").json()
    assert len(skipped["deliveries"]) == 20 and {d["reason"] for d in skipped["deliveries"]} == {"no_credit"}


def test_transient_errors_duplicate_fires_and_redelivered_chunks_still_send_once(stack, brand, no_faults,
                                                                                   monkeypatch):
    from chalicelib.services import campaigns as service
    from chalicelib.services import sending
    openids = add_members(brand, 50)
    credited = openids[:30]
    grant_credits(brand, credited)
    deliver = sending.deliver_chunk
    duplicated: set[str] = set()
    lock = threading.Lock()

    def redelivered(body, **kwargs):
        # SQS is at-least-once: every chunk comes a second time while the first copy is in flight
        with lock:
            first = body["chunk"] not in duplicated
            duplicated.add(body["chunk"])
        if first:
            service.enqueue("send", [body])
        return deliver(body, **kwargs)

    monkeypatch.setattr(sending, "deliver_chunk", redelivered)
    fault(stack, SUBSCRIBE_SEND, errcode=-1, rate=0.2)
    created = create_campaign(brand)
    fire(stack, created, times=2)                   # Scheduler delivers the same fire twice
    done = wait_for(brand, created["campaign_id"], completed, timeout=180)

    per_member = Counter(s["touser"] for s in sent_to(stack, brand))
    assert set(per_member) == set(credited) and max(per_member.values()) == 1
    assert (done["stats"]["sent"], done["stats"]["skipped"]["no_credit"], done["stats"]["failed"]) == (30, 20, 0)
    assert duplicated and done["run"]["runs"] == 1


def test_a_forced_40001_under_four_concurrent_senders_refreshes_the_token_once(stack, brand):
    from chalicelib.wechat.client import WeChatApi, fetch_stable_token
    from chalicelib.wechat.tokens import SharedTokenSource
    app_id, secret = brand.app("mp")["app_id"], brand.app("mp")["app_secret"]
    # four containers: each its own memory, all sharing the token item in DynamoDB
    apis = [WeChatApi(stack.wechat_url, SharedTokenSource(
        app_id, lambda force: fetch_stable_token(stack.wechat_url, app_id, secret, force_refresh=force)))
        for _ in range(4)]
    for i, api in enumerate(apis):
        api.subscribe_send(f"o_warm{i}", TEMPLATE, {})
    sim(stack, "POST", "expire_token", {"app_id": app_id})       # WeChat now answers 40001 to that token
    # counted for this app only: other tests' senders may fetch their own apps' tokens meanwhile
    before = sim(stack, "GET", f"calls?app_id={app_id}").get("cgi-bin/stable_token", 0)
    barrier = threading.Barrier(4)

    def send(i: int) -> None:
        barrier.wait()
        apis[i].subscribe_send(f"o_after{i}", TEMPLATE, {})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sim(stack, "GET", f"calls?app_id={app_id}")["cgi-bin/stable_token"] - before == 1
    assert {s["touser"] for s in sent_to(stack, brand)} >= {f"o_after{i}" for i in range(4)}


def test_cancel_before_the_fire_sends_nothing_even_if_the_fire_arrives(stack, brand):
    from chalicelib import aws
    from chalicelib.services import campaigns as service
    openids = add_members(brand, 20)
    grant_credits(brand, openids)
    created = create_campaign(brand)
    r = brand.admin("POST", f"/campaigns/{created['campaign_id']}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    scheduler = aws.client("scheduler")
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule(Name=created["schedule"]["name"], GroupName=stack.env["SIYU_SCHEDULE_GROUP"])
    # a fire Scheduler had already sent arrives anyway
    service.enqueue("plan", [{**service.fire_input(brand.brand_id, created["campaign_id"]),
                              "scheduled_time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}])
    stack.pump.idle()
    assert sent_to(stack, brand) == []
    after = campaign(brand, created["campaign_id"])
    assert after["state"] == "cancelled" and after["stats"]["sent"] == 0
    again = brand.admin("POST", f"/campaigns/{created['campaign_id']}/resume")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_transition"


def test_pause_stops_sending_and_resume_completes_without_duplicates(stack, brand, no_faults):
    openids = add_members(brand, 50)
    grant_credits(brand, openids)
    fault(stack, SUBSCRIBE_SEND, latency_ms=150)   # slow WeChat,
    created = create_campaign(brand, limits={"per_second": 8})     # and a slow campaign: long enough to pause
    cid = created["campaign_id"]
    fire(stack, created)
    wait_for(brand, cid, lambda c: c["stats"]["sent"] >= 8, timeout=60)
    r = brand.admin("POST", f"/campaigns/{cid}/pause")
    assert r.status_code == 200 and r.json()["state"] == "paused"
    time.sleep(2.5)                                # in-flight calls finish; nothing new starts
    stack.pump.idle()
    at_pause = len(sent_to(stack, brand))
    time.sleep(1.5)
    assert len(sent_to(stack, brand)) == at_pause < 50
    assert campaign(brand, cid)["state"] == "paused"

    r = brand.admin("POST", f"/campaigns/{cid}/resume")
    assert r.status_code == 200 and r.json()["state"] == "running"
    done = wait_for(brand, cid, completed, timeout=120)
    per_member = Counter(s["touser"] for s in sent_to(stack, brand))
    assert set(per_member) == set(openids) and max(per_member.values()) == 1
    assert done["stats"]["sent"] == 50


def test_an_attached_coupon_is_issued_once_to_each_delivered_member(stack, brand):
    openids = add_members(brand, 30)
    grant_credits(brand, openids[:20])
    r = brand.admin("POST", "/coupon-templates", {"name": "10 off", "kind": "cash_off", "value": 1000,
                                                  "valid_days_after_claim": 7, "per_member_limit": 1})
    template = r.json()["template_id"]
    created = create_campaign(brand, coupon_template_id=template)
    fire(stack, created, times=2)
    wait_for(brand, created["campaign_id"], completed, timeout=60)
    wallets = {o: brand.member(openid=o)["coupons"] for o in openids}
    assert all(len(wallets[o]) == 1 and wallets[o][0]["template_id"] == template for o in openids[:20])
    assert all(wallets[o] == [] for o in openids[20:])
    assert brand.admin("GET", f"/coupon-templates/{template}").json()["issued"] == 20


def test_a_recurring_campaign_runs_once_per_fire_and_returns_to_scheduled(stack, brand):
    openids = add_members(brand, 10)
    grant_credits(brand, openids)
    grant_credits(brand, openids)                  # two credits each: two runs
    created = create_campaign(brand, schedule={"cron": "0 10 * * ? *", "timezone": "Asia/Shanghai"},
                              limits={"frequency_cap_per_day": 5})
    assert created["schedule"]["expression"] == "cron(0 10 * * ? *)"
    fire(stack, created, times=2)
    first = wait_for(brand, created["campaign_id"], lambda c: c["state"] == "scheduled" and c["run"]
                     and c["run"]["completed_at"], timeout=60)
    assert first["stats"]["sent"] == 10 and first["run"]["runs"] == 1
    assert len(sent_to(stack, brand)) == 10


def test_subscription_credits_from_the_app_and_from_the_popup_push_count_one_acceptance_once(brand):
    session = brand.mp_session("o_sub")
    r = brand.api.call("POST", f"/mp/{brand.brand_id}/me/subscriptions", session,
                       {"accepted": [TEMPLATE], "rejected": ["TPL_other"]})
    assert r.status_code == 200, r.text
    assert r.json()["credits"] == {TEMPLATE: 1, "TPL_other": 0}
    # WeChat pushes the same popup answer: the echo of the acceptance already counted
    push = {"ToUserName": "gh_mp", "FromUserName": "o_sub", "CreateTime": int(time.time()), "MsgType": "event",
            "Event": "subscribe_msg_popup_event",
            "List": [{"TemplateId": TEMPLATE, "SubscribeStatusString": "accept", "PopupScene": "0"}]}
    for _ in range(3):                              # and retries it
        assert brand.post_callback("mp", push, fmt="json", openid="o_sub").status_code == 200
    credits = brand.api.call("GET", f"/mp/{brand.brand_id}/me/subscriptions", session).json()["credits"]
    assert credits[TEMPLATE] == 1
    # a second acceptance in the popup later is a second credit
    push2 = {**push, "CreateTime": push["CreateTime"] + 1}
    r = brand.api.call("POST", f"/mp/{brand.brand_id}/me/subscriptions", session, {"accepted": [TEMPLATE]})
    assert r.json()["credits"][TEMPLATE] == 2
    assert brand.post_callback("mp", push2, fmt="json", openid="o_sub").status_code == 200
    assert brand.api.call("GET", f"/mp/{brand.brand_id}/me/subscriptions", session).json()["credits"][TEMPLATE] == 2


@pytest.mark.parametrize("fields, code", [
    ({"schedule": {"at": "2020-01-01T10:00:00+08:00"}}, "at_in_past"),
    ({"schedule": {"cron": "0 10 * *"}}, "invalid_cron"),
    ({"schedule": {"cron": "0 10 31 2 ? *"}}, "invalid_cron"),
    ({"schedule": {"at": "tomorrow"}}, "invalid_at"),
    ({"schedule": {"timezone": "Mars/Olympus"}}, "invalid_timezone"),
    ({"message": {"medium": "sms", "template_id": "T"}}, "unknown_medium"),
    ({"message": {"medium": "mp_subscribe"}}, "missing_template_id"),
    ({"coupon_template_id": "tpl_nope"}, "unknown_coupon_template"),
    ({"audience": {"sample_percent": 0}}, "invalid_sample_percent"),
    ({"quiet_hours": {"start": "22:00", "end": "25:00"}}, "invalid_quiet_hours"),
    ({"limits": {"per_second": 0}}, "invalid_per_second"),
])
def test_impossible_campaigns_are_refused_and_change_nothing(shared_brand, inproc, fields, code):
    """In process, on one brand for every case (no test in this module gives that brand a campaign)."""
    _impossible(shared_brand.via(inproc), fields, code)


def test_an_impossible_campaign_over_http_is_refused_and_changes_nothing(shared_brand):
    _impossible(shared_brand, {"schedule": {"cron": "0 10 * *"}}, "invalid_cron")


def _impossible(brand, fields: dict, code: str) -> None:
    body = {"name": "x", "message": {"medium": "mp_subscribe", "template_id": TEMPLATE},
            "schedule": {"at": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()}}
    body.update(fields)
    before = table_items()
    r = brand.admin("POST", "/campaigns", body)
    assert 400 <= r.status_code < 500 and r.json()["error"]["code"] == code, r.text
    assert table_items() == before
    assert brand.admin("GET", "/campaigns").json()["campaigns"] == []


def test_another_brand_cannot_see_or_steer_a_campaign(make_brand):
    a, b = make_brand(), make_brand()
    created = create_campaign(a)
    for method, path in [("GET", ""), ("POST", "/pause"), ("POST", "/cancel")]:
        r = b.api.call(method, f"/admin/{a.brand_id}/campaigns/{created['campaign_id']}{path}", b.admin_key)
        assert r.status_code == 403, r.text
        r = b.admin(method, f"/campaigns/{created['campaign_id']}{path}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_campaign"
    assert campaign(a, created["campaign_id"])["state"] == "scheduled"


@pytest.mark.parametrize("body, code", [
    ({}, "missing_templates"),
    ({"accepted": "TPL"}, "invalid_accepted"),
    ({"accepted": [TEMPLATE], "rejected": [TEMPLATE]}, "invalid_templates"),
    ({"rejected": [""]}, "invalid_rejected"),
])
def test_a_bad_subscription_report_is_refused_and_grants_nothing(shared_brand, inproc, body, code):
    _bad_subscription_report(shared_brand.via(inproc), body, code)


def test_a_bad_subscription_report_over_http_is_refused(shared_brand):
    _bad_subscription_report(shared_brand, {"accepted": "TPL"}, "invalid_accepted")


def _bad_subscription_report(brand, body: dict, code: str) -> None:
    session = brand.mp_session("o_bad_sub")
    before = table_items()
    r = brand.api.call("POST", f"/mp/{brand.brand_id}/me/subscriptions", session, body)
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
    assert table_items() == before


def test_the_deliveries_ledger_pages_and_refuses_a_forged_cursor(stack, brand):
    import base64
    import json
    openids = add_members(brand, 30)
    grant_credits(brand, openids[:10])
    created = create_campaign(brand)
    fire(stack, created)
    wait_for(brand, created["campaign_id"], completed, timeout=60)
    path = f"/campaigns/{created['campaign_id']}/deliveries"
    seen, cursor = [], None
    while True:
        page = brand.admin("GET", f"{path}?limit=7" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += page["deliveries"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 30 and len({d["member_id"] for d in seen}) == 30
    assert Counter(d["state"] for d in seen) == {"sent": 10, "skipped": 20}
    for forged in ({"shard": 0, "key": {"pk": {"S": "B#other#DLV#x"}, "sk": {"S": "m"}}}, {"shard": 99, "key": None},
                   {"shard": "0", "key": None}, ["not", "a", "cursor"]):
        text = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
        r = brand.admin("GET", f"{path}?cursor={text}")
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor", r.text
    r = brand.admin("GET", f"{path}?cursor=%%%")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"
