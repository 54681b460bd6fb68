"""The simulator's WeCom side for guides (siyu_dev.wecom_guides_sim) keeps WeCom's semantics: one-time
login codes, group messages held until the guide confirms (or an auto-confirm rate), one group message
per customer per day, removed contacts, and results paged by cursor — and siyu's paging reads every page."""
from __future__ import annotations

import pytest
import requests

from chalicelib.services import guide_tasks
from chalicelib.wechat.client import WeChatApi
from chalicelib.wechat.tokens import MemoryTokenStore, SharedTokenSource
from siyu_dev.wechat_sim import WeChatSimulator


@pytest.fixture(scope="module")
def sim():
    s = WeChatSimulator(port=0)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def api(sim):
    requests.post(f"{sim.base_url}/__sim/reset", json={"seed": 3}, timeout=5)
    from chalicelib.wechat.client import fetch_wecom_token
    tokens = SharedTokenSource("t", lambda force: fetch_wecom_token(sim.base_url, "wwcorp", "s"), MemoryTokenStore())
    return WeChatApi(sim.base_url, tokens)


def control(sim, what: str, body: dict):
    r = requests.post(f"{sim.base_url}/__sim/wecom/{what}", json=body, timeout=5)
    return r.status_code, r.json()


def test_login_codes_are_one_time_and_name_staff_or_customers(sim, api):
    _, staff = control(sim, "codes", {"userid": "li"})
    assert api.call("GET", "cgi-bin/auth/getuserinfo", params={"code": staff["code"]})["userid"] == "li"
    with pytest.raises(Exception) as used:
        api.call("GET", "cgi-bin/auth/getuserinfo", params={"code": staff["code"]})
    assert used.value.errcode == 40163
    _, customer = control(sim, "codes", {"external_userid": "wm_1"})
    answer = api.call("GET", "cgi-bin/miniprogram/jscode2session", params={"js_code": customer["code"]})
    assert "userid" not in answer and answer["external_userid"] == "wm_1"


def test_a_message_waits_for_the_guide_and_the_daily_cap_refuses_a_second(sim, api):
    control(sim, "removed", {"userid": "li", "external_userid": "wm_gone"})
    first = api.call("POST", "cgi-bin/externalcontact/add_msg_template", json_body={
        "chat_type": "single", "sender": "li", "external_userid": ["wm_1", "wm_2", "wm_gone"], "text": {"content": "a"}})
    assert first["fail_list"] == ["wm_gone"]
    task = api.call("POST", "cgi-bin/externalcontact/get_groupmsg_task", json_body={"msgid": first["msgid"]})
    assert [t["status"] for t in task["task_list"]] == [0]                     # not confirmed yet
    assert control(sim, "confirm", {"userid": "wang", "msgid": first["msgid"]})[0] == 404   # not wang's
    control(sim, "confirm", {"userid": "li", "msgid": first["msgid"]})
    control(sim, "auto_confirm", {"rate": 1})
    second = api.call("POST", "cgi-bin/externalcontact/add_msg_template", json_body={
        "chat_type": "single", "sender": "wang", "external_userid": ["wm_1", "wm_3"], "text": {"content": "b"}})
    rows = api.call("POST", "cgi-bin/externalcontact/get_groupmsg_send_result",
                    json_body={"msgid": second["msgid"], "userid": "wang"})["send_list"]
    assert {r["external_userid"]: r["status"] for r in rows} == {"wm_1": 3, "wm_3": 1}    # wm_1: today's is spent
    import time
    now = int(time.time())
    listed = api.call("POST", "cgi-bin/externalcontact/get_groupmsg_list_v2", json_body={
        "chat_type": "single", "start_time": now - 60, "end_time": now + 60, "creator": "li"})
    assert [(m["msgid"], m["text"]["content"]) for m in listed["group_msg_list"]] == [(first["msgid"], "a")]
    with pytest.raises(Exception) as too_wide:                                  # WeCom: at most a month
        api.call("POST", "cgi-bin/externalcontact/get_groupmsg_list_v2", json_body={
            "chat_type": "single", "start_time": now - 40 * 86400, "end_time": now, "creator": "li"})
    assert too_wide.value.errcode == 47001


def test_results_come_in_pages_and_siyu_reads_every_one(sim, api):
    control(sim, "auto_confirm", {"rate": 1})
    customers = [f"wm_{n:05d}" for n in range(2_345)]
    made = api.call("POST", "cgi-bin/externalcontact/add_msg_template", json_body={
        "chat_type": "single", "sender": "li", "external_userid": customers, "text": {"content": "many"}})
    page = api.call("POST", "cgi-bin/externalcontact/get_groupmsg_send_result",
                    json_body={"msgid": made["msgid"], "userid": "li", "limit": 1000})
    assert len(page["send_list"]) == 1000 and page["next_cursor"]
    rows = guide_tasks._send_list(api, made["msgid"], "li")
    assert sorted(r["external_userid"] for r in rows) == customers and {r["status"] for r in rows} == {1}
