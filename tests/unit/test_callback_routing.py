"""What each WeChat callback asks of siyu, decided from the message alone (the real samples included)."""
from pathlib import Path

import pytest

from chalicelib.services.callbacks import route
from chalicelib.wechat.messages import parse_body

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "wechat-samples"   # provenance: SOURCES.json there


def sample(name: str) -> dict:
    return parse_body((SAMPLES / name).read_bytes())


def test_subscribe_through_a_parametric_qr_code_is_a_touch_with_the_scene():
    action = route("oa", sample("oa_subscribe_qrscene.xml"))
    msg = sample("oa_subscribe_qrscene.xml")
    assert action.name == "touch"
    assert action.args["scene"] == msg["EventKey"].removeprefix("qrscene_")
    assert action.args["shopper"].oa == msg["FromUserName"] and action.args["subscribed"] is True


def test_scan_by_a_follower_is_a_touch_with_the_raw_event_key():
    msg = sample("oa_scan.xml")
    action = route("oa", msg)
    assert action.name == "touch" and action.args["scene"] == msg["EventKey"]


def test_plain_subscribe_is_a_touch_without_scene():
    assert route("oa", sample("oa_subscribe.xml")).args["scene"] is None


def test_unsubscribe_and_text():
    assert route("oa", sample("oa_unsubscribe.xml")).name == "unsubscribe"
    text = route("oa", sample("oa_text_message.xml"))
    assert text.name == "text" and text.args["content"] == sample("oa_text_message.xml")["Content"]


def test_wecom_add_external_contact_carries_guide_state_and_welcome_code():
    msg = sample("wecom_add_external_contact.xml")
    action = route("wecom", msg)
    assert action.name == "touch"
    assert action.args["shopper"].wecom == msg["ExternalUserID"]
    assert action.args["wecom_user_id"] == msg["UserID"]
    assert action.args["scene"] == (msg.get("State") or None)
    assert action.args["welcome_code"] == (msg.get("WelcomeCode") or None)


@pytest.mark.parametrize("name", ["wecom_del_external_contact.xml", "wecom_del_follow_user.xml"])
def test_wecom_removals(name):
    assert route("wecom", sample(name)).name == "wecom_removed"


@pytest.mark.parametrize("name", ["oa_click.xml", "oa_view.xml", "oa_location.xml", "oa_templatesendjobfinish.xml",
                                  "oa_masssendjobfinish.xml", "wecom_change_external_chat_create.xml"])
def test_events_without_effect_are_ignored(name):
    assert route("wecom" if name.startswith("wecom") else "oa", sample(name)).name == "ignore"


def test_retry_of_the_same_message_routes_with_the_same_key():
    assert route("oa", sample("oa_subscribe_qrscene.xml")).key == route("oa", sample("oa_subscribe_qrscene.xml")).key


def test_third_party_suite_add_is_a_touch_too():
    msg = sample("wecom_thirdparty_add_external_contact.xml")
    action = route("wecom", msg)
    assert action.name == "touch" and action.args["shopper"].wecom == msg["ExternalUserID"]
