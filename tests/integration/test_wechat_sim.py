"""The WeChat simulator keeps WeChat's semantics, and the client classifies and retries correctly."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from chalicelib.wechat.client import WeChatApi, WeChatError, fetch_stable_token
from chalicelib.wechat.tokens import MemoryTokenStore, SharedTokenSource
from siyu_dev.wechat_sim import WeChatSimulator


@pytest.fixture(scope="module")
def sim():
    s = WeChatSimulator(port=0)
    s.start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def clean(sim):
    requests.post(f"{sim.base_url}/__sim/reset", json={"seed": 7}, timeout=5)


def get(sim, path, **params):
    return requests.get(f"{sim.base_url}/{path}", params=params, timeout=5).json()


def post(sim, path, body, **params):
    return requests.post(f"{sim.base_url}/{path}", params=params, json=body, timeout=5).json()


def test_stable_token_is_stable_and_token_replaces_the_previous_one(sim):
    one = post(sim, "cgi-bin/stable_token", {"grant_type": "client_credential", "appid": "wx1", "secret": "s"})
    two = post(sim, "cgi-bin/stable_token", {"grant_type": "client_credential", "appid": "wx1", "secret": "s"})
    assert one["access_token"] == two["access_token"]
    fresh = get(sim, "cgi-bin/token", grant_type="client_credential", appid="wx1", secret="s")
    assert fresh["access_token"] != one["access_token"]
    stale = post(sim, "cgi-bin/message/custom/send", {"touser": "o", "msgtype": "text", "text": {"content": "x"}},
                 access_token=one["access_token"])
    assert stale["errcode"] == 40001
    assert post(sim, "cgi-bin/message/custom/send", {"touser": "o", "msgtype": "text", "text": {"content": "x"}},
                access_token=fresh["access_token"])["errcode"] == 0


def test_registered_app_refuses_a_wrong_secret(sim):
    post(sim, "__sim/apps", {"app_id": "wx2", "secret": "right"})
    assert get(sim, "cgi-bin/token", appid="wx2", secret="wrong")["errcode"] == 40125


def test_login_codes_are_one_time(sim):
    code = post(sim, "__sim/codes", {"openid": "o1", "unionid": "u1"})["code"]
    first = get(sim, "sns/jscode2session", appid="wx", secret="s", js_code=code, grant_type="authorization_code")
    assert first["openid"] == "o1" and first["unionid"] == "u1"
    assert get(sim, "sns/jscode2session", js_code=code)["errcode"] == 40163
    assert get(sim, "sns/jscode2session", js_code="nope")["errcode"] == 40029


def test_user_info_with_and_without_unionid(sim):
    token = fetch_stable_token(sim.base_url, "wx3", "s")[0]
    post(sim, "__sim/users", {"app_id": "wx3", "openid": "oa", "unionid": "ua"})
    post(sim, "__sim/users", {"app_id": "wx3", "openid": "ob"})
    assert get(sim, "cgi-bin/user/info", access_token=token, openid="oa")["unionid"] == "ua"
    assert "unionid" not in get(sim, "cgi-bin/user/info", access_token=token, openid="ob")
    assert get(sim, "cgi-bin/user/info", access_token=token, openid="oc")["errcode"] == 40003


def tokens(sim, app_id: str) -> SharedTokenSource:
    """One container's token source for `app_id` at the simulator (the store in memory)."""
    return SharedTokenSource(app_id, lambda force: fetch_stable_token(sim.base_url, app_id, "s", force_refresh=force),
                             MemoryTokenStore())


def test_qr_endpoints_return_real_pngs(sim):
    token = fetch_stable_token(sim.base_url, "wx4", "s")[0]
    made = post(sim, "cgi-bin/qrcode/create", {"action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "S1"}}},
                access_token=token)
    png = requests.get(f"{sim.base_url}/cgi-bin/showqrcode", params={"ticket": made["ticket"]}, timeout=5)
    assert png.headers["Content-Type"] == "image/png" and png.content.startswith(b"\x89PNG\r\n\x1a\n")
    api = WeChatApi(sim.base_url, tokens(sim, "wx4"))
    assert api.wxacode_unlimited("S1", "pages/index").startswith(b"\x89PNG")
    with pytest.raises(WeChatError) as err:
        api.wxacode_unlimited("x" * 33)
    assert err.value.errcode == 40129 and err.value.permanent


def test_sends_are_logged_with_the_contract_fields(sim):
    api = WeChatApi(sim.base_url, tokens(sim, "wx5"))
    api.subscribe_send("o1", "tpl", {"thing1": {"value": "hi"}}, page="p")
    sent = get(sim, "__sim/sent")
    assert sent[0]["api"] == "cgi-bin/message/subscribe/send" and sent[0]["app_id"] == "wx5"
    assert (sent[0]["touser"], sent[0]["template_id"], sent[0]["data"]) == ("o1", "tpl", {"thing1": {"value": "hi"}})
    assert set(sent[0]) == {"api", "app_id", "touser", "template_id", "data", "at"}
    post(sim, "__sim/users", {"app_id": "wx5", "openid": "o_blocked", "blocked": True})
    with pytest.raises(WeChatError) as err:
        api.subscribe_send("o_blocked", "tpl", {})
    assert err.value.errcode == 43101 and err.value.permanent
    assert len(get(sim, "__sim/sent")) == 1


def test_faults_rates_and_classification(sim):
    api = WeChatApi(sim.base_url, tokens(sim, "wx6"))
    path = "cgi-bin/message/custom/send"
    post(sim, "__sim/faults", {"api": path, "errcode": -1, "rate": 1.0})
    with pytest.raises(WeChatError) as err:
        api.custom_send_text("o", "x")
    assert err.value.transient
    post(sim, "__sim/faults", {"api": path, "errcode": 45009, "rate": 0.5})
    failures = 0
    for _ in range(200):
        try:
            api.custom_send_text("o", "x")
        except WeChatError as e:
            assert e.errcode == 45009 and e.transient
            failures += 1
    assert 60 < failures < 140
    post(sim, "__sim/faults", {"api": path, "http_status": 503, "rate": 1.0})
    with pytest.raises(WeChatError) as err:
        api.custom_send_text("o", "x")
    assert err.value.transient
    post(sim, "__sim/faults", {"api": path, "errcode": None, "rate": 0.0, "latency_ms": 500})
    slow = WeChatApi(sim.base_url, api.tokens, timeout=0.1)
    with pytest.raises(WeChatError) as err:
        slow.custom_send_text("o", "x")
    # the request went out and WeChat may act on it: not transient, never to be resent
    assert err.value.outcome_unknown and not err.value.transient


def test_latency_is_injected_without_serialising_callers(sim):
    api = WeChatApi(sim.base_url, tokens(sim, "wx7"))
    api.custom_send_text("o", "warm")
    post(sim, "__sim/faults", {"api": "cgi-bin/message/custom/send", "rate": 0, "latency_ms": 200})
    start = time.monotonic()
    api.custom_send_text("o", "x")
    assert time.monotonic() - start >= 0.2
    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: api.custom_send_text("o", "x"), range(8)))
    assert time.monotonic() - start < 0.8          # 8 x 200 ms would be 1.6 s if serialised


def test_a_stale_token_is_expired_once_and_the_call_retried(sim):
    expired = []

    class Recording(SharedTokenSource):
        def expire(self, token):
            expired.append(token)
            super().expire(token)
    source = Recording("wx8", lambda force: fetch_stable_token(sim.base_url, "wx8", "s", force_refresh=force),
                       MemoryTokenStore())
    api = WeChatApi(sim.base_url, source)
    first = source.get()
    post(sim, "__sim/expire_token", {"app_id": "wx8"})
    api.custom_send_text("o", "x")
    assert expired == [first]
    calls = get(sim, "__sim/calls")
    assert calls["cgi-bin/message/custom/send"] == 2 and calls["cgi-bin/stable_token"] == 2


def test_reset_and_unknown_paths(sim):
    post(sim, "cgi-bin/stable_token", {"appid": "wx9", "secret": "s"})
    assert get(sim, "__sim/calls")
    requests.post(f"{sim.base_url}/__sim/reset", timeout=5)
    assert get(sim, "__sim/calls") == {} and get(sim, "__sim/sent") == []
    assert requests.get(f"{sim.base_url}/nope", timeout=5).status_code == 404
