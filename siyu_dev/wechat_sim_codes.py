"""The simulator's printable codes (issue 11 §1), kept apart from siyu_dev.wechat_sim (which imports
this module at its end and routes to it).

WeChat's code APIs, with real QR images (segno) encoding a URL that carries what a scan needs:

    cgi-bin/qrcode/create            QR_LIMIT_STR_SCENE: one ticket per app and scene_str (asked again,
                                     the same ticket, as WeChat does); the image (showqrcode) encodes
                                     http://weixin.qq.com/q/<ticket>
    wxa/getwxacodeunlimit            the image encodes https://mp.weixin.qq.com/wxa/<appid>/<page>?scene=<scene>
    cgi-bin/externalcontact/add_contact_way | update_contact_way | del_contact_way | get_contact_way |
                                     list_contact_way; qr_code serves an image encoding
                                     https://work.weixin.qq.com/ca/<config_id>

And the shopper's phone:

    POST /__sim/callbacks {"app_id", "url", "token", "encoding_aes_key"?, "mp_api"?}
        where WeChat delivers the app's callbacks (its server configuration); for a mini-program,
        `mp_api` is the brand's /mp/<brand> base the mini-program calls
    POST /__sim/scan {ticket | scene (+ app_id) | config_id, openid, unionid?, external_userid?}
        a shopper scans a printed code: the callback WeChat would send (OA subscribe qrscene_… or,
        for a follower, SCAN; WeCom add_external_contact with State and the guide's UserID),
        encrypted as the app is configured; for an mp code, the mini-program opening with the scene
        (wx.login code -> POST {mp_api}/login -> POST {mp_api}/scan). Answers {app, status, body}
        with siyu's answer.
"""
from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request

from siyu_dev import wechat_sim as base

WECOM_STATE_MAX = 30


def _ext(sim) -> dict:
    """This module's part of the simulator state (cleared by /__sim/reset with the rest)."""
    return sim.state.extra.setdefault("codes", {"tickets": {}, "by_scene": {}, "mp": {}, "ways": {},
                                                "callbacks": {}, "followers": set()})


# ---- WeChat's APIs ---------------------------------------------------------------------------

def _qrcode_create(sim, q, p):
    app_id = sim._app_of(q)
    if p.get("action_name") != "QR_LIMIT_STR_SCENE":
        return base._qrcode_create(sim, q, p)
    scene = ((p.get("action_info") or {}).get("scene") or {}).get("scene_str")
    if not isinstance(scene, str) or not 1 <= len(scene) <= 64:
        raise base._err(40129)
    with sim.state.lock:
        ext = _ext(sim)
        ticket = ext["by_scene"].get((app_id, scene))
        if ticket is None:
            ticket = "gQ" + secrets.token_urlsafe(18)
            ext["by_scene"][(app_id, scene)] = ticket
            ext["tickets"][ticket] = {"app_id": app_id, "scene": scene}
            sim.state.codes[ticket] = {"url": f"http://weixin.qq.com/q/{ticket}", "used": False}
    raise base.Reply(200, {"ticket": ticket, "url": f"http://weixin.qq.com/q/{ticket}"})


def _wxacode(sim, q, p):
    app_id = sim._app_of(q)
    scene = p.get("scene")
    if not isinstance(scene, str) or not scene or len(scene) > 32:
        raise base._err(40129)
    page = p.get("page") or "pages/index/index"
    with sim.state.lock:
        _ext(sim)["mp"].setdefault(scene, set()).add(app_id)
    query = urllib.parse.urlencode({"scene": scene})
    raise base.Reply(200, base._png(f"https://mp.weixin.qq.com/wxa/{app_id}/{page}?{query}"), "image/png")


def _way_view(sim, way: dict) -> dict:
    return {k: way[k] for k in ("config_id", "type", "scene", "state", "user", "skip_verify", "remark")} | {
        "qr_code": f"{sim.base_url}/wwpic/contact_way?config_id={way['config_id']}"}


def _add_contact_way(sim, q, p):
    corp = sim._app_of(q)
    users = p.get("user")
    state = p.get("state") or ""
    if p.get("type") != 1 or not isinstance(users, list) or len(users) != 1 or len(state) > WECOM_STATE_MAX:
        raise base._err(40058 if len(state) > WECOM_STATE_MAX else 47001)
    config_id = secrets.token_hex(16)
    way = {"config_id": config_id, "corp_id": corp, "type": 1, "scene": p.get("scene", 2), "state": state,
           "user": list(users), "skip_verify": bool(p.get("skip_verify", True)), "remark": p.get("remark", ""),
           "created": time.time()}
    with sim.state.lock:
        _ext(sim)["ways"][config_id] = way
    raise base.Reply(200, {"errcode": 0, "errmsg": "ok", "config_id": config_id, "qr_code": _way_view(sim, way)["qr_code"]})


def _way(sim, corp: str, config_id) -> dict:
    with sim.state.lock:
        way = _ext(sim)["ways"].get(config_id)
    if way is None or way["corp_id"] != corp:
        raise base._err(41044)
    return way


def _update_contact_way(sim, q, p):
    way = _way(sim, sim._app_of(q), p.get("config_id"))
    with sim.state.lock:
        if isinstance(p.get("user"), list) and p["user"]:
            way["user"] = list(p["user"])
        for key in ("state", "skip_verify", "remark"):
            if key in p:
                way[key] = p[key]
    raise base.Reply(200, {"errcode": 0, "errmsg": "ok"})


def _del_contact_way(sim, q, p):
    way = _way(sim, sim._app_of(q), p.get("config_id"))
    with sim.state.lock:
        _ext(sim)["ways"].pop(way["config_id"], None)
    raise base.Reply(200, {"errcode": 0, "errmsg": "ok"})


def _get_contact_way(sim, q, p):
    way = _way(sim, sim._app_of(q), p.get("config_id"))
    raise base.Reply(200, {"errcode": 0, "errmsg": "ok", "contact_way": _way_view(sim, way)})


def _list_contact_way(sim, q, p):
    corp = sim._app_of(q)
    start, end = float(p.get("start_time") or 0), float(p.get("end_time") or time.time())
    limit = min(int(p.get("limit") or 100), 1000)
    offset = int(p.get("cursor") or 0)
    with sim.state.lock:
        ways = sorted((w for w in _ext(sim)["ways"].values() if w["corp_id"] == corp and start <= w["created"] <= end),
                      key=lambda w: (w["created"], w["config_id"]))
    page = ways[offset:offset + limit]
    raise base.Reply(200, {"errcode": 0, "errmsg": "ok", "contact_way": [{"config_id": w["config_id"]} for w in page],
                           "next_cursor": str(offset + limit) if offset + limit < len(ways) else ""})


def _contact_way_image(sim, q, p):
    with sim.state.lock:
        way = _ext(sim)["ways"].get(q.get("config_id", ""))
    if way is None:
        raise base.Reply(404, {"errcode": 404, "errmsg": "unknown contact way"})
    raise base.Reply(200, base._png(f"https://work.weixin.qq.com/ca/{way['config_id']}"), "image/png")


ROUTES = {
    "cgi-bin/qrcode/create": _qrcode_create,
    "wxa/getwxacodeunlimit": _wxacode,
    "cgi-bin/externalcontact/add_contact_way": _add_contact_way,
    "cgi-bin/externalcontact/update_contact_way": _update_contact_way,
    "cgi-bin/externalcontact/del_contact_way": _del_contact_way,
    "cgi-bin/externalcontact/get_contact_way": _get_contact_way,
    "cgi-bin/externalcontact/list_contact_way": _list_contact_way,
    "wwpic/contact_way": _contact_way_image,
}
ERRMSG = {41044: "invalid config_id", 40058: "invalid parameter (state longer than 30)"}


# ---- the shopper's phone ---------------------------------------------------------------------

def _post(url: str, body: bytes, content_type: str, headers: dict | None = None) -> tuple[int, object]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, data = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, data = err.code, err.read()
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data.decode("utf-8", "replace")


def _deliver(sim, receiver: str, message: dict, *, wecom: bool, openid: str | None = None):
    from siyu_dev import phone
    with sim.state.lock:
        cb = _ext(sim)["callbacks"].get(receiver)
    if cb is None or not cb.get("url"):
        raise base.Reply(409, {"error": f"no callback URL registered for {receiver} (POST /__sim/callbacks)"})
    key = cb.get("encoding_aes_key")
    built = phone.build_callback(message, token=cb["token"], receive_id=receiver, encoding_aes_key=key,
                                 mode="safe" if key else "plain", wecom=wecom, openid=openid)
    url = cb["url"] + ("&" if "?" in cb["url"] else "?") + urllib.parse.urlencode(built.query)
    return _post(url, built.body, built.content_type)


def scan(sim, payload: dict) -> None:
    from siyu_dev import phone
    now = int(time.time())
    openid, unionid = payload.get("openid"), payload.get("unionid")
    st = sim.state
    if payload.get("ticket"):
        with st.lock:
            code = _ext(sim)["tickets"].get(payload["ticket"])
        if code is None:
            raise base.Reply(404, {"error": "unknown ticket"})
        if not openid:
            raise base.Reply(400, {"error": "openid is required"})
        app_id = code["app_id"]
        with st.lock:
            followers = _ext(sim)["followers"]
            follows = (app_id, openid) in followers
            followers.add((app_id, openid))
            st.users.setdefault((app_id, openid), {"app_id": app_id, "openid": openid, "unionid": unionid})
        if follows:
            msg = phone.oa_scan(app_username=f"gh_{app_id}", openid=openid, scene=code["scene"], create_time=now,
                                ticket=payload["ticket"])
        else:
            msg = phone.oa_subscribe(app_username=f"gh_{app_id}", openid=openid, scene=code["scene"],
                                     create_time=now, ticket=payload["ticket"])
        status, body = _deliver(sim, app_id, msg, wecom=False, openid=openid)
        raise base.Reply(200, {"app": "oa", "event": msg["Event"], "scene": code["scene"], "status": status,
                               "body": body})
    if payload.get("config_id"):
        with st.lock:
            way = _ext(sim)["ways"].get(payload["config_id"])
        if way is None:
            raise base.Reply(404, {"error": "unknown config_id"})
        external = payload.get("external_userid") or "wm" + secrets.token_hex(12)
        with st.lock:
            st.users[(way["corp_id"], external)] = {"corp_id": way["corp_id"], "external_userid": external,
                                                    "unionid": unionid}
        msg = phone.wecom_add_external_contact(corp_id=way["corp_id"], user_id=way["user"][0],
                                               external_userid=external, create_time=now, state=way["state"],
                                               welcome_code="wc" + secrets.token_hex(8))
        status, body = _deliver(sim, way["corp_id"], msg, wecom=True)
        raise base.Reply(200, {"app": "wecom", "external_userid": external, "user_id": way["user"][0],
                               "state": way["state"], "status": status, "body": body})
    scene = payload.get("scene")
    if not scene:
        raise base.Reply(400, {"error": "give ticket, scene or config_id"})
    if not openid:
        raise base.Reply(400, {"error": "openid is required"})
    with st.lock:
        apps = sorted(_ext(sim)["mp"].get(scene, ()))
    app_id = payload.get("app_id") or (apps[0] if len(apps) == 1 else None)
    if app_id is None:
        raise base.Reply(400, {"error": f"scene {scene} belongs to {len(apps)} mini-programs: give app_id"})
    with st.lock:
        cb = _ext(sim)["callbacks"].get(app_id) or {}
        login = "code_" + secrets.token_hex(8)
        st.codes[login] = {"openid": openid, "unionid": unionid, "app_id": app_id, "used": False}
    if not cb.get("mp_api"):
        raise base.Reply(409, {"error": f"no mp_api registered for {app_id} (POST /__sim/callbacks)"})
    status, body = _post(cb["mp_api"] + "/login", json.dumps({"code": login}).encode(), "application/json")
    if status != 200:
        raise base.Reply(200, {"app": "mp", "step": "login", "status": status, "body": body})
    status, body = _post(cb["mp_api"] + "/scan", json.dumps({"scene": scene}).encode(), "application/json",
                         {"Authorization": f"Bearer {body['session']}"})
    raise base.Reply(200, {"app": "mp", "scene": scene, "status": status, "body": body})


def register_callback(sim, payload: dict) -> None:
    if not payload.get("app_id"):
        raise base.Reply(400, {"error": "app_id is required"})
    with sim.state.lock:
        _ext(sim)["callbacks"][payload["app_id"]] = payload
    raise base.Reply(200, {"ok": True})


CONTROL = {"scan": scan, "callbacks": register_callback}
