"""The phone and the server side agree: what the phone builds, callback ingress opens."""
import pytest

from chalicelib.services.callbacks import open_callback
from chalicelib.services.wechat_apps import App
from chalicelib.wechat import crypto
from siyu_dev import phone

KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OA = App("b", "oa", "wxapp0001", "s", "tok123", KEY)
WECOM = App("b", "wecom", "wwcorp0001", "s", "tok123", KEY)


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_oa_and_mp_callbacks_open_to_the_same_message(mode, fmt):
    msg = phone.oa_subscribe(app_username="gh", openid="o1", scene="S1", create_time=1000)
    cb = phone.build_callback(msg, token=OA.token, receive_id=OA.app_id, encoding_aes_key=KEY, mode=mode, fmt=fmt,
                              timestamp=1000, openid="o1")
    opened = open_callback(OA, cb.query, cb.body, now=1000)
    assert opened.msg["EventKey"] == "qrscene_S1" and str(opened.msg["CreateTime"]) == "1000"
    assert (opened.box is None) == (mode == "plain")


def test_wecom_callbacks_are_always_encrypted_and_open():
    msg = phone.wecom_add_external_contact(corp_id=WECOM.app_id, user_id="u", external_userid="e", create_time=5,
                                           state="S1", welcome_code="W")
    cb = phone.build_callback(msg, token=WECOM.token, receive_id=WECOM.app_id, encoding_aes_key=KEY, wecom=True,
                              timestamp=5)
    assert "signature" not in cb.query and b"ExternalUserID" not in cb.body
    assert open_callback(WECOM, cb.query, cb.body, now=5).msg["State"] == "S1"


def test_verification_queries():
    q = phone.build_verification(token="tok123", echostr="e", timestamp=1, nonce="n")
    crypto.verify_signature(q["signature"], "tok123", "1", "n")
    q = phone.build_verification(token="tok123", echostr="plain", receive_id=WECOM.app_id, encoding_aes_key=KEY,
                                 wecom=True)
    box = crypto.MessageCrypto("tok123", KEY, WECOM.app_id)
    box.verify(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"])
    assert box.decrypt(q["echostr"]) == b"plain"


def test_encrypted_reply_round_trip():
    from chalicelib.wechat.messages import encrypted_reply, text_reply
    box = crypto.MessageCrypto("tok123", KEY, OA.app_id)
    body = encrypted_reply(box, text_reply("o1", "gh", "hi", 1), "1", "n")
    assert phone.decrypt_reply(body, token="tok123", encoding_aes_key=KEY, receive_id=OA.app_id)["Content"] == "hi"
