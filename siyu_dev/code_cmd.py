"""`python -m siyu_dev code`: print a channel's code as a shop would, and scan it with a shopper's phone.

The brand's apps are first registered at the simulator with their callback URLs (what a brand sets in
its WeChat consoles), then the code is fetched from siyu (made once through WeChat's API, kept in S3),
saved as a PNG beside the demo state, and scanned through POST /__sim/scan; the member siyu made is
printed with its store, guide and channel.
"""
from __future__ import annotations

import json

LOOKUP = {"oa": "openid", "mp": "mp_openid", "wecom": "external_userid"}


def register_callbacks(http, state: dict, brand_id: str) -> None:
    api, sim = state["api_url"], state["wechat_url"]
    for kind, cfg in state["brand"]["wechat"].items():
        app_id = cfg.get("corp_id") or cfg["app_id"]
        http("POST", f"{sim}/__sim/callbacks", {"app_id": app_id, "url": f"{api}/wechat/{brand_id}/{kind}",
                                                "token": cfg["token"], "encoding_aes_key": cfg.get("encoding_aes_key"),
                                                "mp_api": f"{api}/mp/{brand_id}"})


def run(args, *, http, state: dict, out_dir) -> None:
    api, sim, admin, brand_id = state["api_url"], state["wechat_url"], state["admin_key"], args.brand
    register_callbacks(http, state, brand_id)
    base = f"{api}/admin/{brand_id}/channels/{args.scene}/code?app={args.app}"
    status, meta = http("GET", base + "&format=json", None, admin)
    print(f"code  → {status} {json.dumps(meta, ensure_ascii=False)}")
    if status != 200:
        raise SystemExit(1)
    status, png = http("GET", base, None, admin, headers={"Accept": "image/png"}, raw_answer=True)
    path = out_dir / f"code-{brand_id}-{args.scene}-{args.app}.png"
    path.write_bytes(png)
    print(f"png   → {status} {len(png)} bytes saved to {path} (print it, or open it and scan)")
    scan = {"openid": args.openid, "unionid": args.unionid, "external_userid": args.external_userid}
    if args.app == "oa":
        scan["ticket"] = meta["ticket"]
    elif args.app == "wecom":
        scan["config_id"] = meta["config_id"]
    else:
        scan.update(scene=args.scene, app_id=state["brand"]["wechat"]["mp"]["app_id"])
    status, scanned = http("POST", f"{sim}/__sim/scan", scan)
    print(f"scan  → {status} {json.dumps(scanned, ensure_ascii=False)[:300]}")
    who = args.external_userid if args.app == "wecom" else args.openid
    status, member = http("GET", f"{api}/admin/{brand_id}/members?{LOOKUP[args.app]}={who}", None, admin)
    touch = member.get("first_touch") if isinstance(member, dict) else None
    print(f"member → {status} {member.get('member_id') if isinstance(member, dict) else member} "
          f"first touch: {json.dumps(touch, ensure_ascii=False)}")
    if args.pdf:
        status, pdf = http("GET", f"{api}/admin/{brand_id}/stores/{args.pdf}/codes.pdf?app={args.app}", None, admin,
                           headers={"Accept": "application/pdf"}, raw_answer=True)
        sheet = out_dir / f"codes-{brand_id}-{args.pdf}-{args.app}.pdf"
        sheet.write_bytes(pdf if isinstance(pdf, bytes) else str(pdf).encode())
        print(f"sheet → {status} saved to {sheet}")
