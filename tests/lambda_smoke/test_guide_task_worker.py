"""The guidetasks worker as deployed (issue 11 §4): a head-office task created through the API function,
its schedule's fire delivered to the worker, and the guide's message creating the WeCom group message."""
from __future__ import annotations

import time
import uuid

import pytest
import requests

from siyu_dev import phone
from tests.lambda_smoke.events import rest_event
from tests.lambda_smoke.test_deployed_functions import _run_queue, assert_clean, call, json_of

AES = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
BRAND = f"smoke-gt-{uuid.uuid4().hex[:6]}"
CORP = f"ww{BRAND.replace('-', '')}"


@pytest.fixture(scope="module")
def api(start_function):
    return start_function("siyu-api", "app.app", memory=512, timeout=10)


def test_a_task_fire_reaches_wecom_through_the_guidetasks_worker(api, start_function, stack):
    body = {"brand_id": BRAND, "name": "Smoke guides", "timezone": "Asia/Shanghai",
            "wechat": {"wecom": {"corp_id": CORP, "secret": "wecom-secret", "token": "wecomToken1",
                                 "encoding_aes_key": AES}}}
    r = call(api, "POST", "/admin/brands", "/admin/brands", key=stack.platform_key, json_body=body)
    assert r["statusCode"] == 201, r
    admin = json_of(r)["admin_key"]
    for resource, what, fields in (
            ("/admin/{brand_id}/stores", "stores", {"store_id": "sz", "name": "Shenzhen 1"}),
            ("/admin/{brand_id}/guides", "guides", {"guide_id": "g1", "store_id": "sz", "name": "Li",
                                                    "wecom_user_id": "li"})):
        r = call(api, "POST", resource, f"/admin/{BRAND}/{what}", key=admin, json_body=fields,
                 path_params={"brand_id": BRAND})
        assert r["statusCode"] == 201, r
    add = phone.wecom_add_external_contact(corp_id=CORP, user_id="li", external_userid="wm_smoke",
                                           create_time=int(time.time()))
    cb = phone.build_callback(add, token="wecomToken1", receive_id=CORP, encoding_aes_key=AES, wecom=True)
    reply, _trace = api.invoke(rest_event("POST", "/wechat/{brand_id}/wecom", f"/wechat/{BRAND}/wecom",
                                          path_params={"brand_id": BRAND}, query=dict(cb.query),
                                          headers={"Content-Type": cb.content_type}, body=cb.body.decode()))
    assert reply["ok"] and reply["result"]["statusCode"] == 200, reply
    soon = lambda s: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + s))  # noqa: E731
    r = call(api, "POST", "/admin/{brand_id}/guide-tasks", f"/admin/{BRAND}/guide-tasks", key=admin,
             path_params={"brand_id": BRAND},
             json_body={"name": "smoke", "guide_ids": ["g1"], "message": {"text": f"hello {BRAND}"},
                        "send_at": soon(3600), "due_at": soon(7200)})
    assert r["statusCode"] == 201, r
    task_id = json_of(r)["task_id"]
    stack.command(f"fire {BRAND}.{task_id}")
    fired = _run_queue(start_function, stack, "guidetasks")           # the fire: one message per guide
    assert [b["kind"] for b in fired] == ["fire"]
    guides = _run_queue(start_function, stack, "guidetasks")          # the guide's: the WeCom group message
    assert [b["kind"] for b in guides] == ["guide"]
    made = [t for t in requests.get(f"{stack.wechat_url}/__sim/wecom/tasks", timeout=10).json()
            if (t["text"] or {}).get("content") == f"hello {BRAND}"]
    assert [(t["sender"], t["external_userid"]) for t in made] == [("li", ["wm_smoke"])]
    r = call(api, "GET", "/admin/{brand_id}/guide-tasks/{task_id}", f"/admin/{BRAND}/guide-tasks/{task_id}",
             key=admin, path_params={"brand_id": BRAND, "task_id": task_id})
    assert r["statusCode"] == 200 and json_of(r)["contacts_targeted"] == 1, r
    assert_clean(api)
