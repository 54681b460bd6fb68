"""The local stack, once per test session, on ephemeral 127.0.0.1 ports; each test gets its own brand."""
from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import threading
import time
import urllib.parse

import pytest
import requests

from siyu_dev import phone
from siyu_dev.stack import LocalStack

AES = {"oa": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "mp": "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg",
       "wecom": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"}
_counter = itertools.count(1)


@pytest.fixture(scope="session")
def stack():
    # INFO, so every log call on the tested paths runs (a bad `extra` key is a crash, not noise)
    os.environ["POWERTOOLS_LOG_LEVEL"] = "INFO"
    s = LocalStack(api_port=0, aws_port=0, wechat_port=0, quiet=True).start()
    yield s
    s.stop()


class Api:
    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()

    def call(self, method: str, path: str, key: str | None = None, json_body=None, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return self.http.request(method, self.base + path, json=json_body, headers=headers, timeout=30, **kw)


@pytest.fixture
def ddb(stack):
    """The emulator's DynamoDB, through the same client the code under test uses."""
    from chalicelib import aws
    return aws.client("dynamodb")


@pytest.fixture
def table(stack) -> str:
    """The main table's physical name."""
    return stack.env["SIYU_TABLE"]


@pytest.fixture(scope="module")
def scratch_table(stack) -> str:
    """A table shaped like the main one (keys, indexes, stream) that no worker reads, for tests that
    write to the emulator's backend directly: moto's own path, given what its request checks would
    refuse, can store an item no client could parse, and on the main table its stream record would
    stop the pump's outbox consumer for the rest of the session."""
    import uuid
    from chalicelib import aws
    ddb = aws.client("dynamodb")
    main = ddb.describe_table(TableName=stack.env["SIYU_TABLE"])["Table"]
    name = f"scratch-{uuid.uuid4().hex[:12]}"
    indexes = [{k: i[k] for k in ("IndexName", "KeySchema", "Projection")} for i in main.get("GlobalSecondaryIndexes", [])]
    ddb.create_table(TableName=name, KeySchema=main["KeySchema"], AttributeDefinitions=main["AttributeDefinitions"],
                     BillingMode="PAY_PER_REQUEST", StreamSpecification=main["StreamSpecification"],
                     **({"GlobalSecondaryIndexes": indexes} if indexes else {}))
    yield name
    from moto.dynamodb.models import dynamodb_backends      # the shipped client's model has no DeleteTable
    from siyu_dev.emulator import DYNAMODB_LOCK
    with DYNAMODB_LOCK:
        for backend in [b for account in dynamodb_backends.values() for b in account.values() if name in b.tables]:
            backend.delete_table(name)


@pytest.fixture(scope="session")
def api(stack) -> Api:
    return Api(stack.api_url)


@pytest.fixture(scope="session")
def inproc(stack):
    """The same API without the socket (tests/integration/inprocess.py), for many-case tests."""
    from tests.integration.inprocess import InProcessApi
    return InProcessApi()


class BusTap:
    """Everything published on the bus, read from the local tap queue (a rule forwards all siyu events)."""

    def __init__(self, stack):
        self.stack = stack
        self.seen: list[dict] = []
        self._lock = threading.Lock()

    def events(self, brand_id: str, detail_type: str | None = None) -> list[dict]:
        from chalicelib import aws
        self.stack.pump.idle()
        sqs = aws.client("sqs")
        url = self.stack.env["SIYU_LOCAL_TAP_QUEUE_URL"]
        with self._lock:
            while True:
                got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
                if not got:
                    break
                for m in got:
                    self.seen.append(json.loads(m["Body"]))
                sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                                for i, m in enumerate(got)])
        return [e for e in self.seen if e["detail"].get("brand_id") == brand_id
                and (detail_type is None or e["detail-type"] == detail_type)]


@pytest.fixture(scope="session")
def bus(stack) -> BusTap:
    return BusTap(stack)


class Brand:
    """A freshly created brand with a store, a guide and a channel code S1, and a shopper's phone."""

    def __init__(self, stack, api: Api, brand_id: str, body: dict, admin_key: str):
        self.stack, self.api, self.brand_id, self.body, self.admin_key = stack, api, brand_id, body, admin_key
        self.pos_keys: dict[str, str] = {}

    def app(self, kind: str) -> dict:
        return self.body["wechat"][kind]

    def via(self, api) -> "Brand":
        """This brand, its requests sent through `api` (e.g. the in-process `inproc`)."""
        other = copy.copy(self)
        other.api = api
        return other

    def admin(self, method: str, path: str, json_body=None, **kw):
        return self.api.call(method, f"/admin/{self.brand_id}{path}", self.admin_key, json_body, **kw)

    def member(self, **query) -> dict | None:
        r = self.admin("GET", "/members?" + urllib.parse.urlencode(query))
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        return r.json()

    def post_callback(self, kind: str, message: dict, *, mode: str = "safe", fmt: str = "xml", openid=None,
                      timestamp: int | None = None, tamper=None) -> requests.Response:
        cfg = self.app(kind)
        receive_id = cfg.get("corp_id") or cfg["app_id"]
        cb = phone.build_callback(message, token=cfg["token"], receive_id=receive_id,
                                  encoding_aes_key=cfg.get("encoding_aes_key"), mode=mode, fmt=fmt,
                                  wecom=kind == "wecom", timestamp=timestamp, openid=openid)
        query, body = dict(cb.query), cb.body
        if tamper:
            query, body = tamper(query, body)
        return self.api.call("POST", f"/wechat/{self.brand_id}/{kind}?{urllib.parse.urlencode(query)}",
                             data=body, headers={"Content-Type": cb.content_type})

    def subscribe(self, openid: str, scene: str | None = "S1", *, create_time: int | None = None, **kw):
        msg = phone.oa_subscribe(app_username="gh_test", openid=openid, scene=scene,
                                 create_time=create_time or int(time.time()))
        return self.post_callback("oa", msg, openid=openid, **kw)

    def register_user(self, openid: str, unionid: str | None, kind: str = "oa") -> None:
        requests.post(f"{self.stack.wechat_url}/__sim/users",
                      json={"app_id": self.app(kind)["app_id"], "openid": openid, "unionid": unionid}, timeout=10)

    def mp_session(self, openid: str, unionid: str | None = None) -> str:
        code = requests.post(f"{self.stack.wechat_url}/__sim/codes",
                             json={"openid": openid, "unionid": unionid, "app_id": self.app("mp")["app_id"]},
                             timeout=10).json()["code"]
        r = self.api.call("POST", f"/mp/{self.brand_id}/login", json_body={"code": code})
        assert r.status_code == 200, r.text
        return r.json()["session"]


def brand_body(brand_id: str) -> dict:
    return {"brand_id": brand_id, "name": f"Brand {brand_id}", "timezone": "Asia/Shanghai",
            "auto_reply": "thanks, we got it",
            "wechat": {"oa": {"app_id": f"wxoa{brand_id.replace('-', '')}", "app_secret": "oa-secret",
                              "token": "oaToken123", "encoding_aes_key": AES["oa"]},
                       "mp": {"app_id": f"wxmp{brand_id.replace('-', '')}", "app_secret": "mp-secret",
                              "token": "mpToken123", "encoding_aes_key": AES["mp"]},
                       "wecom": {"corp_id": f"ww{brand_id.replace('-', '')}", "secret": "wecom-secret",
                                 "token": "wecomToken1", "encoding_aes_key": AES["wecom"]}}}


def new_brand(stack, api: Api, prefix: str = "b") -> Brand:
    brand_id = f"{prefix}-{next(_counter)}-{int(time.time() * 1000) % 100000}"
    body = brand_body(brand_id)
    r = api.call("POST", "/admin/brands", stack.platform_key, body)
    assert r.status_code == 201, r.text
    brand = Brand(stack, api, brand_id, body, r.json()["admin_key"])
    r = brand.admin("POST", "/stores", {"store_id": "sz", "name": "Shenzhen 1", "city": "Shenzhen"})
    assert r.status_code == 201, r.text
    brand.pos_keys["sz"] = r.json()["pos_key"]
    r = brand.admin("POST", "/stores", {"store_id": "sh", "name": "Shanghai 1", "city": "Shanghai"})
    brand.pos_keys["sh"] = r.json()["pos_key"]
    r = brand.admin("POST", "/guides", {"guide_id": "g1", "store_id": "sz", "name": "Li", "wecom_user_id": "li"})
    assert r.status_code == 201, r.text
    r = brand.admin("POST", "/channels", {"scene": "S1", "store_id": "sz", "guide_id": "g1",
                                          "source": "counter_poster", "tags": ["poster", "sz"],
                                          "welcome_message": "welcome!"})
    assert r.status_code == 201, r.text
    r = brand.admin("POST", "/channels", {"scene": "S2", "store_id": "sh", "source": "receipt", "tags": ["sh"]})
    assert r.status_code == 201, r.text
    return brand


@pytest.fixture
def make_brand(stack, api):
    def make(prefix: str = "b") -> Brand:
        return new_brand(stack, api, prefix)
    return make


@pytest.fixture(scope="module")
def shared_brand(stack, api) -> Brand:
    """One brand for a module's cases that must change nothing (refusals): made once, not per case."""
    return new_brand(stack, api, "module")


@pytest.fixture
def brand(make_brand) -> Brand:
    return make_brand()


def table_items() -> int:
    """How many items the main table holds (a refused request must not change it). Counted in the
    emulator (siyu_dev.emulator.item_count): a Scan pages through everything the session wrote."""
    from chalicelib.storage.models import Item
    from siyu_dev.emulator import item_count
    return item_count(Item.Meta.table_name)


@contextlib.contextmanager
def dynamodb_calls():
    """The DynamoDB operations this process sends through PynamoDB's client while the block runs
    (`with dynamodb_calls() as calls: ...`; `calls` lists operation names, and may be cleared)."""
    from chalicelib.storage.models import Item
    client = Item._get_connection().connection.client
    calls: list[str] = []

    def count(event_name, **_kw):
        calls.append(event_name.rsplit(".", 1)[1])
    client.meta.events.register("before-send.dynamodb", count)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-send.dynamodb", count)
