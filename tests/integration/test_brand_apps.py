"""A brand's WeChat apps on the local stack: one app id per brand (409 app_already_registered, race-safe),
secrets written last (no orphan, no brand without secrets), keys answered uncacheable, and a WeCom
third-party suite's callbacks."""
from __future__ import annotations

import copy
import itertools
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chalicelib.wechat.crypto import MessageCrypto
from tests.integration.conftest import AES, brand_body, table_items

_ids = itertools.count(1)
SUITE_SAMPLE = (Path(__file__).resolve().parents[1] / "fixtures" / "wecom_thirdparty_add_external_contact.xml")


def fresh_id(tag: str) -> str:
    return f"{tag}-{next(_ids)}-{int(time.time() * 1000) % 100000}"


def ssm_names(stack, brand_id: str) -> list[str]:
    """Every SSM parameter held for `brand_id` (a plain botocore client: siyu's own ships a trimmed model)."""
    import botocore.session
    from chalicelib import secrets
    ssm = botocore.session.Session().create_client("ssm", endpoint_url=stack.aws_url, region_name="cn-north-1")
    pages = ssm.get_paginator("get_parameters_by_path").paginate(Path=f"{secrets.prefix()}/{brand_id}",
                                                                  Recursive=True)
    return [p["Name"] for page in pages for p in page["Parameters"]]


def brand_items(brand_id: str, body: dict) -> list[str]:
    """What is stored of `brand_id`: its brand item, its key, its claims on the app ids of `body`."""
    from chalicelib.domain import tenancy as rules
    from chalicelib.storage.models import ApiKey, AppClaim, Brand
    found = [f"brand {brand_id}" for _ in Brand.query(f"B#{brand_id}")]
    for space, app_id, field in rules.app_claims(rules.brand(body)["public"]):
        found += [f"{field} {app_id}" for c in AppClaim.query(f"APP#{space}#{app_id}") if c.brand_id == brand_id]
    found += [f"key of {k.brand_id}" for k in ApiKey.scan(ApiKey.brand_id == brand_id)]
    return found


@pytest.mark.parametrize("taken", ["oa", "mp", "wecom", "suite"])
def test_a_second_brand_with_an_app_id_already_registered_is_refused_and_writes_nothing(stack, api, taken):
    first = brand_body(fresh_id("own"))
    first["wechat"]["wecom"]["suite_id"] = f"wwsuite{first['brand_id'].replace('-', '')}"
    assert api.call("POST", "/admin/brands", stack.platform_key, first).status_code == 201
    second = brand_body(fresh_id("dup"))
    field = {"oa": ("oa", "app_id"), "mp": ("mp", "app_id"), "wecom": ("wecom", "corp_id"),
             "suite": ("wecom", "suite_id")}[taken]
    second["wechat"][field[0]][field[1]] = first["wechat"][field[0]][field[1]]
    before = table_items()
    r = api.call("POST", "/admin/brands", stack.platform_key, second)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "app_already_registered"
    assert f"wechat.{field[0]}.{field[1]}" in error["message"]
    assert first["brand_id"] not in error["message"]          # another tenant's brand id is not told
    assert table_items() == before
    assert ssm_names(stack, second["brand_id"]) == []


def test_an_oa_app_id_cannot_come_back_as_another_brands_mini_program(stack, api):
    first = brand_body(fresh_id("own"))
    assert api.call("POST", "/admin/brands", stack.platform_key, first).status_code == 201
    second = brand_body(fresh_id("dup"))
    second["wechat"]["mp"]["app_id"] = first["wechat"]["oa"]["app_id"]
    r = api.call("POST", "/admin/brands", stack.platform_key, second)
    assert r.status_code == 409 and r.json()["error"]["code"] == "app_already_registered", r.text


def test_concurrent_creations_with_one_app_id_make_exactly_one_brand(stack, api):
    shared = f"wxrace{fresh_id('r').replace('-', '')}"
    bodies = []
    for _ in range(8):
        body = brand_body(fresh_id("race"))
        body["wechat"]["oa"]["app_id"] = shared
        bodies.append(body)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda b: api.call("POST", "/admin/brands", stack.platform_key, b), bodies))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 7, [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"app_already_registered"}
    winner = next(b for b, a in zip(bodies, answers) if a.status_code == 201)
    from chalicelib.storage.models import AppClaim
    assert [c.brand_id for c in AppClaim.query(f"APP#wx#{shared}")] == [winner["brand_id"]]
    for body, answer in zip(bodies, answers):
        if answer.status_code == 409:
            assert brand_items(body["brand_id"], body) == [] and ssm_names(stack, body["brand_id"]) == []


def test_created_keys_are_answered_uncacheable(stack, api):
    r = api.call("POST", "/admin/brands", stack.platform_key, brand_body(fresh_id("nostore")))
    assert r.status_code == 201 and "admin_key" in r.json()
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache"
    brand_id, admin_key = r.json()["brand_id"], r.json()["admin_key"]
    r = api.call("POST", f"/admin/{brand_id}/stores", admin_key, {"store_id": "s1", "name": "One"})
    assert r.status_code == 201 and "pos_key" in r.json()
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache"


# ---- secrets last (in-process, faults injected) ---------------------------------------------

class Lost(Exception):
    """A write whose answer never came."""


def test_a_brand_write_that_fails_leaves_no_secrets_behind(stack, monkeypatch):
    from chalicelib.services import admin
    from chalicelib.storage import tenancy
    body = brand_body(fresh_id("ddbdown"))

    def down(*args, **kwargs):
        raise Lost("DynamoDB did not answer")
    monkeypatch.setattr(tenancy, "create_brand", down)
    with pytest.raises(Lost):
        admin.create_brand(copy.deepcopy(body))
    monkeypatch.undo()
    assert ssm_names(stack, body["brand_id"]) == []
    assert brand_items(body["brand_id"], body) == []


@pytest.mark.parametrize("landed", [False, True], ids=["ssm_refused", "ssm_wrote_but_answer_lost"])
def test_a_secret_write_that_fails_removes_the_brand_again(stack, monkeypatch, landed):
    from chalicelib import secrets
    from chalicelib.services import admin
    body = brand_body(fresh_id("ssmdown"))
    real_put = secrets.put_brand_secrets

    def failing_put(ref, values):
        if landed:
            real_put(ref, values)
        raise Lost("SSM did not answer")
    monkeypatch.setattr(secrets, "put_brand_secrets", failing_put)
    before = table_items()
    with pytest.raises(Lost):
        admin.create_brand(copy.deepcopy(body))
    assert brand_items(body["brand_id"], body) == [] and table_items() == before
    assert ssm_names(stack, body["brand_id"]) == []
    monkeypatch.undo()
    # nothing of the failed attempt stands in the way: the same brand, same app ids, is created next time
    created = admin.create_brand(copy.deepcopy(body))
    assert created["brand_id"] == body["brand_id"]
    assert len(ssm_names(stack, body["brand_id"])) == 1


def test_a_failed_secret_write_that_cannot_be_cleaned_keeps_the_brand_naming_its_secrets(stack, monkeypatch):
    """SSM wrote, its answer was lost, and SSM is down for the cleanup too: the brand item stays, naming
    the parameter (an operator can delete both); secrets are never left without a brand."""
    from chalicelib import secrets
    from chalicelib.services import admin
    from chalicelib.storage import tenancy
    body = brand_body(fresh_id("ssmgone"))
    real_put = secrets.put_brand_secrets

    def failing_put(ref, values):
        real_put(ref, values)
        raise Lost("SSM did not answer")

    def failing_delete(ref):
        raise Lost("SSM still down")
    monkeypatch.setattr(secrets, "put_brand_secrets", failing_put)
    monkeypatch.setattr(secrets, "delete_brand_secrets", failing_delete)
    with pytest.raises(Lost):
        admin.create_brand(copy.deepcopy(body))
    [name] = ssm_names(stack, body["brand_id"])
    assert tenancy.get_brand(body["brand_id"]).secret_ref == name


# ---- a WeCom third-party suite --------------------------------------------------------------

def test_a_suite_callback_encrypted_for_the_suite_id_is_accepted(stack, api):
    body = brand_body(fresh_id("suite"))
    suite_id = f"wwsuite{body['brand_id'].replace('-', '')}"
    body["wechat"]["wecom"]["suite_id"] = suite_id
    r = api.call("POST", "/admin/brands", stack.platform_key, body)
    assert r.status_code == 201, r.text
    assert r.json()["wechat"]["wecom_suite_id"] == suite_id
    admin_key, wecom = r.json()["admin_key"], body["wechat"]["wecom"]
    box = MessageCrypto(wecom["token"], AES["wecom"], suite_id)        # ReceiveId = SuiteId
    path = f"/wechat/{body['brand_id']}/wecom"
    ts, nonce = str(int(time.time())), "123456"
    # WeChat's URL check for the suite's callback URL
    echo = box.encrypt(b"echo-4711")
    r = api.call("GET", path + "?" + urllib.parse.urlencode(
        {"msg_signature": box.sign(ts, nonce, echo), "timestamp": ts, "nonce": nonce, "echostr": echo}))
    assert r.status_code == 200 and r.text == "echo-4711", r.text
    def post(encrypted: str):
        outer = f"<xml><ToUserName><![CDATA[{suite_id}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt>" \
                "<AgentID><![CDATA[]]></AgentID></xml>"
        query = {"msg_signature": box.sign(ts, nonce, encrypted), "timestamp": ts, "nonce": nonce}
        return api.call("POST", path + "?" + urllib.parse.urlencode(query), data=outer.encode(),
                        headers={"Content-Type": "text/xml"})

    def member(external_userid: str):
        return api.call("GET", f"/admin/{body['brand_id']}/members?external_userid={external_userid}", admin_key)

    # the documented third-party add_external_contact (tests/fixtures, provenance in its first line);
    # its AuthCorpId becomes this brand's corp id: the suite was installed by this corp
    sample = SUITE_SAMPLE.read_bytes().replace(b"wxf8b4f85f3a794e77", wecom["corp_id"].encode())
    r = post(box.encrypt(sample))
    assert r.status_code == 200 and r.text == "success", r.text
    r = member("woAJ2GCAAAXtWyujaWJHDDGi0mACH71w")
    assert r.status_code == 200, r.text
    assert r.json()["first_touch"]["via"] == "wecom"
    # the same suite installed by another corp: its callbacks decrypt with the suite id, but are not ours
    foreign = sample.replace(wecom["corp_id"].encode(), b"wwanothercorp").replace(
        b"woAJ2GCAAAXtWyujaWJHDDGi0mACH71w", b"woForeignCorpShopper0000000000001")
    r = post(box.encrypt(foreign))
    assert r.status_code == 200 and r.text == "success", r.text
    assert member("woForeignCorpShopper0000000000001").status_code == 404
    # an envelope made for an id the brand does not name is still refused
    r = post(MessageCrypto(wecom["token"], AES["wecom"], "wwsomeoneelse").encrypt(b"<xml/>"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "receive_id_mismatch"


def test_a_retried_secret_write_that_finds_its_own_first_attempt_counts_as_written(stack):
    """botocore resends a put whose answer was lost; the resend meets ParameterAlreadyExists."""
    from botocore.exceptions import ClientError
    from chalicelib import secrets
    ref = secrets.new_ref(fresh_id("retry"))
    secrets.put_brand_secrets(ref, {"oa": {"token": "t1"}})
    secrets.put_brand_secrets(ref, {"oa": {"token": "t1"}})             # the retry: same value, fine
    with pytest.raises(ClientError):
        secrets.put_brand_secrets(ref, {"oa": {"token": "other"}})      # someone else's value: refused
    assert secrets.brand_secrets(ref) == {"oa": {"token": "t1"}}


def test_a_brand_left_without_its_secrets_answers_unknown_brand_not_500(stack, api, monkeypatch):
    """SSM refused the secrets and was down for the cleanup: the brand item stays (the cleanup never
    deletes what it cannot check), and it answers as the brand it never became."""
    from chalicelib import secrets
    from chalicelib.services import admin

    def refused(ref, values):
        raise Lost("SSM refused")

    def failing_delete(ref):
        raise Lost("SSM still down")
    body = brand_body(fresh_id("nosecrets"))
    monkeypatch.setattr(secrets, "put_brand_secrets", refused)
    monkeypatch.setattr(secrets, "delete_brand_secrets", failing_delete)
    with pytest.raises(Lost):
        admin.create_brand(copy.deepcopy(body))
    monkeypatch.undo()
    assert ssm_names(stack, body["brand_id"]) == []
    r = api.call("GET", f"/wechat/{body['brand_id']}/oa?signature=x&timestamp=1&nonce=2&echostr=3")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_brand", r.text


def test_brands_from_before_app_claims_get_their_claims_and_shared_ids_are_reported(stack, api):
    from datetime import datetime, timezone
    from chalicelib.services import admin
    from chalicelib.storage.models import AppClaim, Brand
    old, twin = fresh_id("legacy"), fresh_id("legacy")
    shared = f"wxold{old.replace('-', '')}"
    for brand_id in (old, twin):             # written as the brand item was before claims existed
        Brand(f"B#{brand_id}", "BRAND", brand_id=brand_id, name="Old", timezone="Asia/Shanghai",
              created_at=datetime.now(timezone.utc).isoformat(), secret_ref="/x", oa_app_id=shared,
              wecom_corp_id=f"ww{brand_id.replace('-', '')}").save()
    first = admin.claim_existing_apps()
    ours = [c for c in first["conflicts"] if c["brand_id"] in (old, twin)]
    assert ours == [{"field": "wechat.oa.app_id", "app_id": shared, "brand_id": twin, "held_by": old}]
    assert AppClaim.get(f"APP#wx#{shared}", "APP").brand_id == old
    assert AppClaim.get(f"APP#wecom#ww{twin.replace('-', '')}", "APP").brand_id == twin
    again = admin.claim_existing_apps()                       # idempotent
    assert [c for c in again["conflicts"] if c["brand_id"] in (old, twin)] == ours
    # and from now on the legacy app id is taken
    body = brand_body(fresh_id("new"))
    body["wechat"]["oa"]["app_id"] = shared
    r = api.call("POST", "/admin/brands", stack.platform_key, body)
    assert r.status_code == 409 and r.json()["error"]["code"] == "app_already_registered"
