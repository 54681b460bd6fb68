"""A shopper's phone, seen from siyu: exactly what WeChat's servers send to a callback URL.

Pure functions (no HTTP): the `scan` command, the README demo and the tests post what these build.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

from chalicelib.wechat.crypto import MessageCrypto, signature
from chalicelib.wechat.messages import parse_body, to_xml


@dataclass(frozen=True)
class Callback:
    query: dict[str, str]
    body: bytes
    content_type: str


def random_nonce() -> str:
    return str(secrets.randbelow(10 ** 10))


def build_callback(message: dict, *, token: str, receive_id: str, encoding_aes_key: str | None = None,
                   mode: str = "plain", fmt: str = "xml", wecom: bool = False, timestamp: int | None = None,
                   nonce: str | None = None, openid: str | None = None) -> Callback:
    """Sign (and in compat/safe mode, or always for WeCom, encrypt) `message` as WeChat would."""
    inner = json.dumps(message, ensure_ascii=False) if fmt == "json" else to_xml(message)
    to_user = message.get("ToUserName", receive_id)
    if mode == "compat" and not wecom:
        outer = dict(message)
    elif wecom:
        outer = {"ToUserName": to_user, "AgentID": ""} if fmt == "xml" else {"ToUserName": to_user}
    else:
        outer = {"ToUserName": to_user}
    return build_raw_callback(inner.encode(), token=token, receive_id=receive_id, encoding_aes_key=encoding_aes_key,
                              mode=mode, fmt=fmt, wecom=wecom, timestamp=timestamp, nonce=nonce, openid=openid,
                              outer=outer)


def build_raw_callback(inner: bytes, *, token: str, receive_id: str, encoding_aes_key: str | None = None,
                       mode: str = "plain", fmt: str = "xml", wecom: bool = False, timestamp: int | None = None,
                       nonce: str | None = None, openid: str | None = None, outer: dict | None = None) -> Callback:
    """Sign (and encrypt unless plain) a body given byte for byte: a sample another SDK recorded, a
    body with a byte-order mark, a hostile one. `outer` is the envelope around Encrypt (default: ToUserName)."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    nonce = nonce or random_nonce()
    content_type = "application/json" if fmt == "json" else "text/xml"
    if wecom:
        mode = "safe"
    query: dict[str, str] = {}
    if not wecom:
        query.update(signature=signature(token, ts, nonce), timestamp=ts, nonce=nonce)
        if openid:
            query["openid"] = openid
    else:
        query.update(timestamp=ts, nonce=nonce)
    if mode == "plain":
        return Callback(query, inner, content_type)
    if not encoding_aes_key:
        raise ValueError(f"{mode} mode needs the EncodingAESKey")
    box = MessageCrypto(token, encoding_aes_key, receive_id)
    encrypt = box.encrypt(inner)
    query["msg_signature"] = box.sign(ts, nonce, encrypt)
    if not wecom:
        query["encrypt_type"] = "aes"
    envelope = {**(outer if outer is not None else {"ToUserName": receive_id}), "Encrypt": encrypt}
    if fmt == "json":
        return Callback(query, json.dumps(envelope, ensure_ascii=False).encode(), content_type)
    return Callback(query, to_xml(envelope).encode(), content_type)


def build_verification(*, token: str, echostr: str, receive_id: str | None = None,
                       encoding_aes_key: str | None = None, wecom: bool = False, timestamp=None,
                       nonce=None) -> dict[str, str]:
    """The query of WeChat's server-URL check (WeCom encrypts the echostr)."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    nonce = nonce or random_nonce()
    if not wecom:
        return {"signature": signature(token, ts, nonce), "timestamp": ts, "nonce": nonce, "echostr": echostr}
    box = MessageCrypto(token, encoding_aes_key, receive_id)
    encrypted = box.encrypt(echostr.encode())
    return {"msg_signature": box.sign(ts, nonce, encrypted), "timestamp": ts, "nonce": nonce, "echostr": encrypted}


def decrypt_reply(body: bytes | str, *, token: str, encoding_aes_key: str, receive_id: str) -> dict:
    """Verify and open an encrypted passive reply (what the shopper's WeChat would show)."""
    outer = parse_body(body)
    box = MessageCrypto(token, encoding_aes_key, receive_id)
    box.verify(outer.get("MsgSignature"), outer.get("TimeStamp", ""), outer.get("Nonce", ""), outer["Encrypt"])
    return parse_body(box.decrypt(outer["Encrypt"]))


def _event(app_username: str, openid: str, create_time: int, event: str, **extra) -> dict:
    return {"ToUserName": app_username, "FromUserName": openid, "CreateTime": int(create_time),
            "MsgType": "event", "Event": event, **extra}


def oa_subscribe(*, app_username: str, openid: str, scene: str | None = None, create_time: int,
                 ticket: str | None = None) -> dict:
    if scene is None:
        return _event(app_username, openid, create_time, "subscribe", EventKey="")
    return _event(app_username, openid, create_time, "subscribe", EventKey=f"qrscene_{scene}",
                  Ticket=ticket or f"gQ{scene}")


def oa_scan(*, app_username: str, openid: str, scene: str, create_time: int, ticket: str | None = None) -> dict:
    return _event(app_username, openid, create_time, "SCAN", EventKey=scene, Ticket=ticket or f"gQ{scene}")


def oa_unsubscribe(*, app_username: str, openid: str, create_time: int) -> dict:
    return _event(app_username, openid, create_time, "unsubscribe", EventKey="")


def oa_text(*, app_username: str, openid: str, content: str, create_time: int, msg_id: int) -> dict:
    return {"ToUserName": app_username, "FromUserName": openid, "CreateTime": int(create_time),
            "MsgType": "text", "Content": content, "MsgId": int(msg_id)}


def wecom_add_external_contact(*, corp_id: str, user_id: str, external_userid: str, create_time: int,
                               state: str | None = None, welcome_code: str | None = None) -> dict:
    msg = {"ToUserName": corp_id, "FromUserName": "sys", "CreateTime": int(create_time), "MsgType": "event",
           "Event": "change_external_contact", "ChangeType": "add_external_contact", "UserID": user_id,
           "ExternalUserID": external_userid}
    if state is not None:
        msg["State"] = state
    if welcome_code is not None:
        msg["WelcomeCode"] = welcome_code
    return msg


def wecom_del_external_contact(*, corp_id: str, user_id: str, external_userid: str, create_time: int) -> dict:
    return {"ToUserName": corp_id, "FromUserName": "sys", "CreateTime": int(create_time), "MsgType": "event",
            "Event": "change_external_contact", "ChangeType": "del_external_contact", "UserID": user_id,
            "ExternalUserID": external_userid}


def mp_subscribe_msg_popup(*, app_username: str, openid: str, create_time: int, accepted: list[str],
                           rejected: list[str], fmt: str = "json") -> dict:
    """The subscribe-message popup result. JSON puts `List` at the top (an object for one template,
    an array for several); XML nests the repeated <List> in <SubscribeMsgPopupEvent>."""
    items = [{"TemplateId": t, "SubscribeStatusString": "accept", "PopupScene": "0"} for t in accepted]
    items += [{"TemplateId": t, "SubscribeStatusString": "reject", "PopupScene": "0"} for t in rejected]
    if fmt == "xml":
        return _event(app_username, openid, create_time, "subscribe_msg_popup_event",
                      SubscribeMsgPopupEvent={"List": items})
    return _event(app_username, openid, create_time, "subscribe_msg_popup_event",
                  List=items[0] if len(items) == 1 else items)
