"""The shared access-token item in DynamoDB: keyed by brand and app, and leased only on what was read."""
from __future__ import annotations

import secrets

import pytest
import requests

from tests.unit.test_wechat_tokens import Nested, WeChat


def test_a_brand_naming_another_brands_app_id_with_a_wrong_secret_gets_a_refusal_not_its_token(stack, brand):
    from chalicelib.services.wechat_apps import App, api_for, app_for
    from chalicelib.storage import tenancy
    from chalicelib.wechat.client import WeChatError
    from chalicelib.wechat.tokens import DynamoTokenStore, token_key
    victim = app_for(tenancy.require_brand(brand.brand_id), "oa")
    requests.post(f"{stack.wechat_url}/__sim/apps", json={"app_id": victim.app_id, "secret": victim.secret},
                  timeout=10).raise_for_status()
    api_for(victim).custom_send_text("o_victim_friend", "hello from the real brand")
    # another brand whose record names the victim's public app id, with a secret it guessed
    intruder = App("intruder-" + secrets.token_hex(3), "oa", victim.app_id, "guessed", "t", None)
    with pytest.raises(WeChatError) as err:
        api_for(intruder).custom_send_text("o_victim_friend", "spam through someone else's account")
    assert err.value.config_error and err.value.errcode == 40125

    sent = requests.get(f"{stack.wechat_url}/__sim/sent", timeout=10).json()
    assert [s["data"]["content"] for s in sent if s["app_id"] == victim.app_id] == ["hello from the real brand"]
    store = DynamoTokenStore()
    assert store.read(token_key(victim.brand_id, "oa", victim.app_id)).token
    intruders = store.read(token_key(intruder.brand_id, "oa", victim.app_id))
    assert intruders is None or intruders.token is None


def test_containers_that_read_no_token_just_before_another_put_fetch_once_on_dynamodb(stack):
    from chalicelib.wechat.tokens import DynamoTokenStore
    for n in (2, 4):
        wechat = WeChat()
        key = f"test#oa#wx{secrets.token_hex(4)}"
        assert Nested(n, wechat, DynamoTokenStore(), key=key).run() == ["tok1"] * n
        assert wechat.fetches == [False]


def test_a_released_lease_is_free_at_once_and_only_its_owner_can_release_it(stack):
    import time

    from chalicelib.wechat.tokens import DynamoTokenStore
    store, key, now = DynamoTokenStore(), f"test#oa#wx{secrets.token_hex(4)}", time.time()
    assert store.take_lease(key, "a", now + 10, now)
    assert not store.take_lease(key, "b", now + 10, now)
    assert not store.release(key, "b")
    assert store.release(key, "a")
    assert store.take_lease(key, "b", now + 10, now)
