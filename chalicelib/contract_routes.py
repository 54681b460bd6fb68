"""Every route's declaration, keyed by (METHOD, path) exactly as app.py registers it: the one source
of the request checks (chalicelib.contract.check_request, run by app.body()) and of /openapi.json.

A route registered in app.py without an entry here fails tests/unit/test_contract_declarations.py.
Field schemas follow the domain parse they front (same bounds, same `invalid_<field>` codes, fields
listed in the order the domain checks them), so the schema refuses only what the domain refused,
with the same answer; the business checks (times in the window, known templates...) stay there.
"""
from __future__ import annotations

from chalicelib.contract import Header, Op

# ---- building blocks ------------------------------------------------------------------------------------

SLUG = r"^[a-z0-9][a-z0-9_-]{0,39}$"
EXTERNAL = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
MINTED = r"^[A-Za-z0-9_-]{1,64}$"
SCENE = r"^[A-Za-z0-9_\-.=&!*()~,:@]{1,64}$"
MAX_CENTS = 100_000_000


def s(max_len: int | None = None, *, null: bool = False, pattern: str | None = None, min_len: int | None = None,
      **extra) -> dict:
    schema: dict = {"type": ["string", "null"] if null else "string", **extra}
    if max_len is not None:
        schema["maxLength"] = max_len
    if min_len is not None:
        schema["minLength"] = min_len
    if pattern:
        schema["pattern"] = pattern
    return schema


def i(low: int | None = None, high: int | None = None, *, null: bool = False, **extra) -> dict:
    schema: dict = {"type": ["integer", "null"] if null else "integer", **extra}
    if low is not None:
        schema["minimum"] = low
    if high is not None:
        schema["maximum"] = high
    return schema


def obj(required=(), *, closed: bool = False, **properties) -> dict:
    schema: dict = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


TIME = s(null=True, format="date-time", description="ISO 8601 with a zone, e.g. 2026-11-11T00:00:00+08:00")
TIME_OUT = {"type": ["string", "null"], "format": "date-time"}
STR_OUT = {"type": ["string", "null"]}
INT_OUT = {"type": "integer"}
ANY_OBJ = {"type": "object"}


def out(*required: str, **properties) -> dict:
    """A response body: these fields always present (more may follow)."""
    return {"type": "object", "required": list(required), "properties": properties}


def listing(key: str, item: dict, *extra: str) -> dict:
    return out(key, *extra, **{key: {"type": "array", "items": item}})


IDEMPOTENCY = Header("Idempotency-Key", s(128, min_len=1), required=True, code="missing_idempotency_key",
                     description="1-128 printable characters, one per attempt: a retry with the same key gets "
                                 "the first answer again and changes nothing")

# ---- request bodies (fields in the order the domain checks them) ---------------------------------------

BRAND = obj(["wechat", "brand_id", "name"],
            wechat={"type": "object", "description": "the brand's apps: any of oa {app_id, app_secret, token, "
                                                     "encoding_aes_key?}, mp {same}, wecom {corp_id, secret, token, "
                                                     "encoding_aes_key}"},
            brand_id=s(pattern=SLUG), name=s(100), timezone=s(default="Asia/Shanghai"),
            auto_reply=s(600, null=True), coupon_retention_days=i(1, 3650, null=True))
STORE = obj(["store_id", "name"], store_id=s(pattern=SLUG), name=s(100), city=s(60, null=True))
GUIDE = obj(["guide_id", "store_id", "name"], wecom_user_id=s(64, null=True), guide_id=s(pattern=SLUG),
            store_id=s(pattern=SLUG), name=s(100))
CHANNEL = obj(["scene"],
              tags={"type": ["array", "null"], "maxItems": 20, "items": s(40, min_len=1)},
              scene=s(pattern=SCENE, description="the value an OA QR code / mini-program code carries"),
              store_id=s(null=True, pattern=SLUG), guide_id=s(null=True, pattern=SLUG),
              source=s(60, default="qrcode"), welcome_coupon_template_id=s(64, null=True),
              welcome_message=s(600, null=True))
TEMPLATE = obj(["kind", "name"],
               kind={"type": "string", "enum": ["cash_off", "percent_off", "gift"]},
               value=i(0, 10_000_000, null=True, description="cash_off: cents off; percent_off: 1-99; gift: 0"),
               valid_from=TIME, valid_until=TIME, valid_days_after_claim=i(1, 3650, null=True),
               claim_starts_at=TIME, claim_ends_at=TIME, total_stock=i(1, MAX_CENTS, null=True),
               flash_sale={"type": "boolean", "default": False},
               expected_claims_per_second=i(1, null=True),
               store_ids={"type": ["array", "null"], "minItems": 1, "maxItems": 500,
                          "items": s(pattern=SLUG, **{"x-error-code": "invalid_store_id"})},
               reversal_voids={"type": "boolean", "default": False},
               name=s(100), min_spend_cents=i(0, MAX_CENTS, null=True), per_member_limit=i(1, 1000, null=True))
LOOKUP = obj(["order_amount_cents"], order_amount_cents=i(0, MAX_CENTS),
             member_code={"description": "the rotating code the shopper's mini-program shows (GET /me/member-code)"})
REDEEM = obj(["order_amount_cents", "order_id"], order_amount_cents=i(0, MAX_CENTS), order_id=s(128, min_len=1),
             till_id=s(64, null=True), code={"description": "the coupon's code (spaces, dashes, case ignored)"})
ITEM = {"type": "object", "x-error-code": "invalid_items", "additionalProperties": False,
        "properties": {"name": s(100, null=True), "quantity": i(1, 10_000), "unit_price_cents": i(0, MAX_CENTS),
                       "sku": s(pattern=EXTERNAL, **{"x-error-code": "invalid_sku"})}}
_ORDER_FIELDS = dict(
    order_id=s(pattern=EXTERNAL), amount_cents=i(1, MAX_CENTS, description="whole cents"), occurred_at=TIME,
    member_id=s(null=True, pattern=MINTED), guide_id=s(null=True, pattern=SLUG),
    till_id=s(null=True, pattern=EXTERNAL),
    redemption_ids={"type": ["array", "null"], "maxItems": 10, "items": s(pattern=MINTED)},
    items={"type": ["array", "null"], "maxItems": 100, "items": ITEM})
ORDER = obj(["order_id", "amount_cents"], closed=True, **{"member_code": s(200, null=True, min_len=1), **_ORDER_FIELDS})
REFUND = obj(["refund_id", "amount_cents"], closed=True, refund_id=s(pattern=EXTERNAL),
             amount_cents=i(1, MAX_CENTS))
# orders or refunds or both (an ERP sends a day's refunds on their own): "not both empty" is the
# service's check (400 invalid_orders), the schema bounds each list
IMPORT = obj([], closed=True,
             orders={"type": "array", "maxItems": 500,
                     "description": "orders as at the till, plus store_id (null: online) and the member by "
                                    "member_id, unionid or openid; each row is accepted or rejected on its own",
                     },
             refunds={"type": "array", "maxItems": 500,
                      "description": "{order_id, refund_id, amount_cents, occurred_at?}"})
SECTION = {"type": ["object", "null"]}
CAMPAIGN = obj([], name=s(100, min_len=1), coupon_template_id=s(64, null=True, min_len=1),
               schedule={**SECTION, "description": "{at?: time, cron?: EventBridge's six fields, e.g. "
                                                   "'0 10 * * ? *', timezone?}"},
               audience={**SECTION, "description": "{tags_any?, tags_all?, store_ids?, joined_after?, "
                                                   "joined_before?, sample_percent?}"},
               message={**SECTION, "description": "{medium: mp_subscribe|oa_template|oa_custom (the old name channel is accepted), template_id?, "
                                                  "page?, data?, text?}"},
               limits={**SECTION, "description": "{per_second?: 1-10000, frequency_cap_per_day?: 1-100}"},
               quiet_hours={"description": "{start: 'HH:MM', end: 'HH:MM'} in the schedule's time zone"})
SUBSCRIPTIONS = obj([], accepted={"type": ["array", "null"], "maxItems": 20, "items": s(128, min_len=1)},
                    rejected={"type": ["array", "null"], "maxItems": 20, "items": s(128, min_len=1)})

# ---- response bodies -------------------------------------------------------------------------------------

BRAND_OUT = out("brand_id", "name", "timezone", "wechat", brand_id=STR_OUT, name=STR_OUT, timezone=STR_OUT,
                created_at=TIME_OUT, wechat=ANY_OBJ)
STORE_OUT = out("store_id", "name", store_id={"type": "string"}, name={"type": "string"}, city=STR_OUT,
                created_at=TIME_OUT)
GUIDE_OUT = out("guide_id", "store_id", "name", guide_id={"type": "string"}, store_id={"type": "string"},
                name={"type": "string"}, wecom_user_id=STR_OUT)
CHANNEL_OUT = out("scene", "source", "tags", scene={"type": "string"}, source={"type": "string"},
                  tags={"type": "array", "items": {"type": "string"}}, store_id=STR_OUT, guide_id=STR_OUT,
                  oa_qr_scene={"type": "string"}, mp_scene={"type": "string"})
MEMBER_OUT = out("member_id", member_id={"type": "string"}, tags={"type": "array"})
COUPON_OUT = out("code", "template_id", "kind", "value", "state", code={"type": "string"},
                 template_id={"type": "string"}, kind={"type": "string"}, value=INT_OUT, state={"type": "string"},
                 valid_until=TIME_OUT, qr={"type": "string"})
TEMPLATE_OUT = out("template_id", "name", "kind", "value", "flash_sale", template_id={"type": "string"},
                   name={"type": "string"}, kind={"type": "string"}, value=INT_OUT, flash_sale={"type": "boolean"},
                   total_stock={"type": ["integer", "null"]})
STATS_OUT = out("from", "to", "by", "rows", "totals", rows={"type": "array", "items": ANY_OBJ}, totals=ANY_OBJ,
                **{"from": {"type": "string"}, "to": {"type": "string"}, "by": {"type": "string"}})
CAMPAIGN_OUT = out("campaign_id", "name", "state", "stats", campaign_id={"type": "string"}, name={"type": "string"},
                   state={"type": "string"}, stats=ANY_OBJ, run={"type": ["object", "null"]})
ORDER_OUT = out("order_id", "member_id", order_id={"type": "string"}, member_id=STR_OUT,
                member_order_number={"type": ["integer", "null"]})
REFUND_OUT = out("refund_id", "order_id", "amount_cents", refund_id={"type": "string"}, order_id={"type": "string"},
                 amount_cents=INT_OUT)
SUMMARY = out("accepted", "duplicates", "rejected", accepted=INT_OUT, duplicates=INT_OUT,
              rejected={"type": "array", "items": out("index", "code", "message")})
SESSION_OUT = out("session", "expires_at", "openid", session={"type": "string"}, expires_at={"type": "integer"},
                  openid={"type": "string"})
SUBS_OUT = out("openid", "credits", member_id=STR_OUT, openid={"type": "string"}, credits=ANY_OBJ)
WECHAT_Q = {"signature": s(), "msg_signature": s(), "timestamp": s(), "nonce": s(), "echostr": s(),
            "openid": s(), "encrypt_type": s()}
DATE_Q = {"from": s(description="YYYY-MM-DD (brand's time zone); default 30 days ago"),
          "to": s(description="YYYY-MM-DD; default today")}

A, POS, MP, PLAT, WX = "brandAdminKey", "posKey", "shopperSession", "platformKey", "wechatSignature"
WECHAT_TYPES = ("text/xml", "application/xml", "application/json", "text/plain", "application/octet-stream",
                "application/x-www-form-urlencoded")


WECHAT_ERRORS = {400: ["bad_callback", "bad_ciphertext", "forbidden_xml", "malformed_xml", "malformed_json",
                       "missing_encrypt", "missing_echostr", "encryption_not_configured"],
                 401: ["bad_signature", "stale_timestamp"], 403: ["receive_id_mismatch"],
                 404: ["app_not_configured"], 413: ["body_too_large"]}


def _wechat(kind: str, method: str) -> Op:
    if method == "GET":
        return Op(f"WeChat {kind} server URL check: echoes `echostr` when the signature is right", WX,
                  {200: {"type": "string"}}, query=WECHAT_Q, tag="wechat", response_type="text/plain",
                  errors=WECHAT_ERRORS)
    return Op(f"WeChat {kind} callback (plain or safe mode, XML or JSON): answered within WeChat's 5 s", WX,
              {200: {"type": "string", "description": "`success`, or a passive reply (XML, encrypted in safe mode)"}},
              query=WECHAT_Q, tag="wechat", content_types=WECHAT_TYPES, response_type=("text/plain", "application/xml"),
              errors=WECHAT_ERRORS)


ROUTES: dict[tuple[str, str], Op] = {
    ("GET", "/health"): Op("Can this function serve? (configuration complete, no recent AWS outage)", None,
                           {200: out("ok", ok={"type": "boolean"})}, errors={503: ["misconfigured"]}, tag="ops"),
    ("GET", "/openapi.json"): Op("This document", None, {200: ANY_OBJ}, tag="ops"),
    ("GET", "/docs"): Op("The API reference (rendered from /openapi.json)", None, {200: {"type": "string"}},
                         tag="ops", response_type="text/html"),
    ("GET", "/docs/redoc.standalone.js"): Op("The reference's renderer (vendored Redoc)", None,
                                             {200: {"type": "string"}}, tag="ops",
                                             response_type="application/javascript"),
    # tenancy
    ("POST", "/admin/brands"): Op("Create a brand; answers its admin key once", PLAT, {201: BRAND_OUT},
                                  request=BRAND, errors={409: ["brand_exists", "app_already_registered"]},
                                  tag="tenancy",
                                  request_example={"brand_id": "tea", "name": "Tea House", "wechat": {
                                      "oa": {"app_id": "wx123", "app_secret": "…", "token": "tok123"}}}),
    ("GET", "/admin/{brand_id}"): Op("A brand (public ids only)", A, {200: BRAND_OUT}, tag="tenancy"),
    ("POST", "/admin/{brand_id}/stores"): Op("Create a store; answers its POS key once", A,
                                             {201: out("pos_key", **STORE_OUT["properties"])}, request=STORE,
                                             errors={409: ["store_exists"]}, tag="tenancy",
                                             request_example={"store_id": "sz", "name": "Shenzhen 1"}),
    ("GET", "/admin/{brand_id}/stores"): Op("The brand's stores", A, {200: listing("stores", STORE_OUT)},
                                            tag="tenancy"),
    ("POST", "/admin/{brand_id}/guides"): Op("Create a guide (a store's shopping assistant)", A, {201: GUIDE_OUT},
                                             request=GUIDE, errors={409: ["guide_exists", "wecom_user_taken"],
                                                                    404: ["unknown_store"]},
                                             tag="tenancy"),
    ("GET", "/admin/{brand_id}/guides"): Op("The brand's guides", A, {200: listing("guides", GUIDE_OUT)},
                                            tag="tenancy"),
    ("POST", "/admin/{brand_id}/channels"): Op("Create a channel (a scene printed on a code)", A, {201: CHANNEL_OUT},
                                               request=CHANNEL, errors={409: ["channel_exists"]}, tag="tenancy",
                                               request_example={"scene": "S1", "store_id": "sz", "tags": ["poster"]}),
    ("GET", "/admin/{brand_id}/channels"): Op("The brand's channels", A, {200: listing("channels", CHANNEL_OUT)},
                                              tag="tenancy"),
    ("GET", "/admin/{brand_id}/members"): Op(
        "One member by ?openid= / ?unionid= / ?external_userid=, else a page of members (filters, cursor)", A,
        {200: ANY_OBJ}, query={"openid": s(), "unionid": s(), "external_userid": s(), "store_id": s(), "guide_id": s(),
                               "channel": s(description="the first touch's scene"), "tag": s(),
                               "joined_from": s(description="ISO date or date-time, inclusive"),
                               "joined_to": s(), "limit": s(description="1-100, default 20"),
                               "cursor": s(description="the `cursor` of the previous page, unchanged")},
        errors={404: ["unknown_member"], 400: ["missing_identity", "invalid_cursor", "invalid_limit",
                                                "invalid_joined_from", "invalid_joined_to", "invalid_joined_range",
                                                "invalid_store_id", "invalid_guide_id", "invalid_channel",
                                                "invalid_tag", "unknown_parameter"]}, tag="members"),
    # WeChat
    **{(m, f"/wechat/{{brand_id}}/{k}"): _wechat(k, m) for k in ("oa", "mp", "wecom") for m in ("GET", "POST")},
    # mini-program
    ("POST", "/mp/{brand_id}/login"): Op("Exchange a wx.login code for a session", None, {200: SESSION_OUT},
                                         request=obj(["code"], code=s(128, min_len=1,
                                                                      **{"x-error-code": "missing_code"})),
                                         tag="mini-program", request_example={"code": "081abc"}),
    ("POST", "/mp/{brand_id}/scan"): Op("The shopper opened the mini-program from a code", MP,
                                        {200: out("member_id", "created", member_id={"type": "string"},
                                                  created={"type": "boolean"}, scene=STR_OUT,
                                                  session={"type": "string", "description":
                                                           "the caller's session again, naming the member "
                                                           "(same expiry): use it from now on"})},
                                        request=obj(["scene"], scene=s(pattern=SCENE)), tag="mini-program"),
    # coupons
    ("POST", "/admin/{brand_id}/coupon-templates"): Op(
        "Create a coupon template", A, {201: TEMPLATE_OUT}, request=TEMPLATE, tag="coupons",
        errors={400: ["invalid_validity", "invalid_claim_window", "flash_sale_too_fast"], 404: ["unknown_store"],
                409: ["template_exists"]},
        request_example={"name": "10 yuan off", "kind": "cash_off", "value": 1000, "min_spend_cents": 5000,
                         "valid_days_after_claim": 30}),
    ("GET", "/admin/{brand_id}/coupon-templates/{template_id}"): Op("A coupon template with live counts", A,
                                                                    {200: TEMPLATE_OUT},
                                                                    errors={404: ["unknown_coupon_template"]},
                                                                    tag="coupons"),
    ("GET", "/admin/{brand_id}/coupon-templates/{template_id}/stats"): Op(
        "A template's issued/redeemed by store or day", A, {200: STATS_OUT},
        query={**DATE_Q, "by": s(enum=["store", "day"])}, errors={404: ["unknown_coupon_template"]},
        tag="coupons"),
    ("POST", "/mp/{brand_id}/coupon-templates/{template_id}/claim"): Op(
        "Claim a coupon", MP, {201: out("coupon", coupon=COUPON_OUT)}, tag="coupons",
        errors={409: ["out_of_stock", "limit_reached", "claim_window_closed", "claims_busy"],
                                  404: ["unknown_coupon_template"]}),
    ("GET", "/mp/{brand_id}/me/coupons"): Op("My coupons", MP, {200: listing("coupons", COUPON_OUT)},
                                             tag="coupons"),
    ("GET", "/mp/{brand_id}/me/member-code"): Op("My rotating member code (for the till to scan)", MP,
                                                 {200: out("member_code", "expires_at")},
                                                 errors={404: ["not_a_member"]},
                                                 tag="coupons"),
    ("POST", "/pos/{brand_id}/stores/{store_id}/member-lookup"): Op(
        "The member behind a scanned code and the coupons usable for this amount", POS,
        {200: out("member", "coupons", member=ANY_OBJ, coupons={"type": "array", "items": COUPON_OUT})},
        request=LOOKUP, errors={404: ["invalid_member_code"]}, tag="till",
        request_example={"member_code": "…", "order_amount_cents": 12800}),
    ("POST", "/pos/{brand_id}/stores/{store_id}/redemptions"): Op(
        "Redeem a coupon (once per Idempotency-Key)", POS, {201: out("redemption_id", redemption_id=s())},
        request=REDEEM, headers=(IDEMPOTENCY,), tag="till",
        errors={409: ["already_redeemed", "expired", "not_yet_valid", "wrong_store", "min_spend_not_met",
                      "reversed", "idempotency_key_reused"], 404: ["unknown_code"],
                429: ["too_many_unknown_codes"]},
        request_example={"code": "AB12-CD34-EF", "order_id": "T1-0001", "order_amount_cents": 12800}),
    ("POST", "/pos/{brand_id}/stores/{store_id}/redemptions/{redemption_id}/reversal"): Op(
        "Reverse a redemption", POS, {200: out("redemption_id", "reversed_at")}, tag="till",
        errors={404: ["unknown_redemption"], 409: ["reversal_window_closed"]}),
    # orders
    ("POST", "/pos/{brand_id}/stores/{store_id}/orders"): Op(
        "Record an order at the till (once per Idempotency-Key)", POS, {201: ORDER_OUT}, request=ORDER,
        headers=(IDEMPOTENCY,), tag="orders",
        errors={400: ["ambiguous_member", "invalid_redemption_ids", "invalid_occurred_at"],
                409: ["order_exists", "idempotency_key_reused", "redemption_linked", "redemption_reversed",
                      "order_busy"],
                404: ["invalid_member_code", "unknown_guide", "unknown_member", "unknown_redemption"]},
        request_example={"order_id": "T1-0001", "amount_cents": 12800, "member_code": "…"}),
    ("POST", "/pos/{brand_id}/stores/{store_id}/orders/{order_id}/refunds"): Op(
        "Refund (part of) an order (once per Idempotency-Key)", POS, {201: REFUND_OUT}, request=REFUND,
        headers=(IDEMPOTENCY,), tag="orders", errors={409: ["refund_exceeds_order", "refund_exists",
                                                            "idempotency_key_reused", "order_busy"],
                                                      404: ["unknown_order"]},
        request_example={"refund_id": "R1", "amount_cents": 2000}),
    ("POST", "/admin/{brand_id}/order-imports"): Op(
        "Import orders and refunds (each accepted or rejected on its own)", A,
        {200: out("accepted", "duplicates", "rejected", "refunds", refunds=SUMMARY, **SUMMARY["properties"])},
        request=IMPORT, tag="orders"),
    ("GET", "/admin/{brand_id}/stats"): Op(
        "The scoreboard: joins, conversion, repeat rate, private-domain share, redemption rate", A,
        {200: STATS_OUT}, query={**DATE_Q, "by": s(enum=["day", "store", "guide", "channel"])}, tag="scoreboard"),
    # campaigns
    ("POST", "/admin/{brand_id}/campaigns"): Op(
        "Create (and schedule) a campaign", A, {201: CAMPAIGN_OUT}, request=CAMPAIGN, tag="campaigns",
        errors={400: ["invalid_audience", "invalid_message", "invalid_schedule", "invalid_per_second", "missing_text",
                      "invalid_quiet_hours", "invalid_timezone"], 404: ["unknown_coupon_template"],
                503: ["scheduler_unavailable"]},
        request_example={"name": "Double 11", "audience": {"tags_any": ["vip"]},
                         "message": {"medium": "oa_custom", "text": "50% off today"},
                         "schedule": {"cron": "0 10 * * ? *", "timezone": "Asia/Shanghai"}}),
    ("GET", "/admin/{brand_id}/campaigns"): Op("The brand's campaigns (a summary each; GET one for its stats)", A,
                                               {200: listing("campaigns", out("campaign_id", "name", "state",
                                                                              campaign_id={"type": "string"},
                                                                              name={"type": "string"},
                                                                              state={"type": "string"},
                                                                              created_at=TIME_OUT))},
                                               tag="campaigns"),
    ("GET", "/admin/{brand_id}/campaigns/{campaign_id}"): Op("A campaign with its live progress and stats", A,
                                                             {200: CAMPAIGN_OUT}, errors={404: ["unknown_campaign"]},
                                                             tag="campaigns"),
    **{("POST", f"/admin/{{brand_id}}/campaigns/{{campaign_id}}/{act}"): Op(
        f"{act.capitalize()} a campaign", A, {200: CAMPAIGN_OUT}, tag="campaigns",
        errors={409: ["invalid_transition", "busy"], 404: ["unknown_campaign"]})
        for act in ("pause", "resume", "cancel")},
    ("GET", "/admin/{brand_id}/campaigns/{campaign_id}/deliveries"): Op(
        "A campaign's deliveries, a page at a time", A,
        {200: listing("deliveries", ANY_OBJ, "next_cursor")},
        query={"state": s(enum=["sent", "skipped", "failed", "held_out"]), "limit": s(), "cursor": s()},
        errors={400: ["invalid_state", "invalid_cursor"], 404: ["unknown_campaign"]}, tag="campaigns"),
    ("POST", "/admin/{brand_id}/campaigns/preview"): Op(
        "How many members an audience would plan: exact up to 16 x 128 members in the join window, else an "
        "estimate with its 95% interval", A,
        {200: out("members_examined", "eligible", "exact", members_examined=INT_OUT, eligible=INT_OUT,
                  exact={"type": "boolean"},
                  estimate=out("eligible", "low", "high", eligible=INT_OUT, low=INT_OUT, high=INT_OUT))},
        request=obj([], audience={**SECTION, "description": "as a campaign's audience"},
                    message={**SECTION, "description": "as a campaign's message (validated alike)"}),
        errors={400: ["invalid_audience", "invalid_tags_any", "invalid_tags_all", "invalid_store_ids",
                      "invalid_joined_after", "invalid_joined_before", "invalid_sample_percent",
                      "invalid_holdout_percent", "invalid_message", "unknown_medium", "conflicting_medium", "missing_template_id",
                      "missing_text", "invalid_timezone"]},
        tag="campaigns", request_example={"audience": {"tags_any": ["vip"]}}),
    ("GET", "/admin/{brand_id}/guide-tasks"): Op(
        "The brand's guide tasks, newest first (figures: GET one)", A,
        {200: listing("tasks", out("task_id", "name", "state", task_id={"type": "string"}, name={"type": "string"},
                                   state={"type": "string"}, guides_assigned=INT_OUT, send_at=STR_OUT,
                                   due_at=STR_OUT, created_at=STR_OUT, started_at=STR_OUT, completed_at=STR_OUT),
                      "next_cursor")},
        query={"limit": s(), "cursor": s()},
        errors={400: ["invalid_limit", "invalid_cursor", "unknown_parameter"]}, tag="guides"),
    ("POST", "/mp/{brand_id}/me/subscriptions"): Op(
        "Report what wx.requestSubscribeMessage answered", MP, {200: SUBS_OUT}, request=SUBSCRIPTIONS,
        errors={400: ["missing_templates", "invalid_templates"]}, tag="mini-program",
        request_example={"accepted": ["tmpl-1"]}),
    ("GET", "/mp/{brand_id}/me/subscriptions"): Op("My subscription credits", MP, {200: SUBS_OUT},
                                                   tag="mini-program"),
}


# ---- serving the document ----------------------------------------------------------------------------------

_documents: dict[str, dict] = {}


def document(app_routes: dict, context: dict) -> dict:
    """/openapi.json for the app's route table (chalice's {path: {method: entry}}), built once per
    container and server prefix (API Gateway's stage, e.g. /api; "/" locally)."""
    from chalicelib import contract
    resource, path = context.get("resourcePath") or "", context.get("path") or ""
    server = (path[: -len(resource)] if resource and path.endswith(resource) else "") or "/"
    if server not in _documents:
        names = {(m, p): entry.view_name for p, methods in app_routes.items() for m, entry in methods.items()}
        shared = [n for n in names.values() if list(names.values()).count(n) > 1]
        names = {(m, p): f"{n}_{m.lower()}" if n in shared else n for (m, p), n in names.items()}
        _documents[server] = contract.build({k: v for k, v in ROUTES.items() if k in names}, names, server=server)
    return _documents[server]


# Relative URLs: the page works under any stage prefix (/api/docs loads /api/openapi.json).
REFERENCE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>siyu API</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><div id="reference"></div>
<script src="docs/redoc.standalone.js"></script>
<script>Redoc.init("openapi.json", {hideDownloadButton: false, expandResponses: "200,201"},
                   document.getElementById("reference"));</script>
</body></html>
"""

_renderer: list[str] = []


def renderer() -> str:
    """The vendored Redoc bundle (chalicelib/vendor/VENDORED.md), read once per container."""
    if not _renderer:
        from pathlib import Path
        _renderer.append((Path(__file__).parent / "vendor" / "redoc" / "redoc.standalone.js").read_text("utf-8"))
    return _renderer[0]


# ---- codes, guides and the console (issues 11 and 12) -------------------------------------------------
# Declared after they merged; fields in the order their domain parses check them (chalicelib/domain/
# tenancy.channel, domain/package_codes.request, services/guides.login and change_tags,
# domain/guide_tasks.spec), the business checks (times in the window, known guides...) left there.
G = "guideSession"
NONBLANK = r"\S"                  # the parses refuse a string that .strip() empties
CHANNEL_PATCH = obj([],
                    tags=CHANNEL["properties"]["tags"], store_id=s(null=True, pattern=SLUG),
                    guide_id=s(null=True, pattern=SLUG), source=s(60, pattern=NONBLANK),
                    welcome_coupon_template_id=s(64, null=True, pattern=NONBLANK),
                    welcome_message=s(600, null=True, pattern=NONBLANK),
                    page=s(128, null=True, pattern=NONBLANK,
                           description="the mini-program page its code opens (changing it remakes the mp code)"))
PACKAGE_BATCH = obj(["count", "reward", "batch_id", "channel"],
                    count=i(1, 100_000), reward={**obj(["coupon_template_id"], coupon_template_id=s(pattern=MINTED)),
                                                 "x-error-code": "invalid_reward"},
                    batch_id=s(pattern=SLUG), channel=s(pattern=SCENE, description="the scene of the channel "
                                                                                    "the codes join through"))
GUIDE_LOGIN = obj(["code"], code=s(256, min_len=1, pattern=NONBLANK, description="a WeCom OAuth or wx.qy.login code",
                                   **{"x-error-code": "missing_code"}),
                  via={"type": "string", "enum": ["oauth", "miniprogram"], "default": "oauth"})
_TAG_CHANGE = {"type": ["array", "null"], "maxItems": 20,
               "items": s(40, min_len=1, description="printable, no surrounding spaces",
                          **{"x-error-code": "invalid_tag"})}
MEMBER_TAGS = obj([], add=_TAG_CHANGE, remove=_TAG_CHANGE)
_TASK_TEXT = dict(pattern=NONBLANK, description="printable (newlines and tabs allowed)")
_IDS = lambda: {"type": ["array", "null"], "minItems": 1, "maxItems": 2000, "items": s(pattern=SLUG)}  # noqa: E731
_PROGRAM_FIELD = lambda key, n: s(n, **_TASK_TEXT, **{"x-error-code": f"invalid_message_miniprogram_{key}"})  # noqa
GUIDE_TASK = obj(
    ["name", "message", "send_at", "due_at"], closed=True,
    name=s(100, **_TASK_TEXT), guide_ids=_IDS(), store_ids=_IDS(),
    timezone=s(64, null=True, description="IANA; default the brand's"),
    audience={"type": ["object", "null"], "additionalProperties": False, "x-error-code": "invalid_audience",
              "properties": {
                  "joined_after": s(min_len=1, null=True, **{"x-error-code": "invalid_joined_after"}),
                  "joined_before": s(min_len=1, null=True, **{"x-error-code": "invalid_joined_before"}),
                  "tags_any": {"type": ["array", "null"], "maxItems": 20, "x-error-code": "invalid_tags_any",
                               "items": s(64, min_len=1)},
                  "tags_all": {"type": ["array", "null"], "maxItems": 20, "x-error-code": "invalid_tags_all",
                               "items": s(64, min_len=1)}}},
    message={"type": "object", "additionalProperties": False, "x-error-code": "invalid_message",
             "description": "text, a mini-program card, or both",
             "properties": {
                 "text": s(4000, null=True, **_TASK_TEXT, **{"x-error-code": "invalid_message_text"}),
                 "miniprogram": {"type": ["object", "null"], "additionalProperties": False,
                                 "x-error-code": "invalid_miniprogram",
                                 "required": ["title", "appid", "page", "pic_media_id"],
                                 "properties": {"title": _PROGRAM_FIELD("title", 64),
                                                "appid": _PROGRAM_FIELD("appid", 32),
                                                "page": _PROGRAM_FIELD("page", 256),
                                                "pic_media_id": _PROGRAM_FIELD("pic_media_id", 256)}}}},
    send_at=s(min_len=1, format="date-time", description="when WeCom is asked (not in the past)",
              **{"x-error-code": "invalid_send_at"}),
    due_at=s(min_len=1, format="date-time", description="10 minutes to 30 days after send_at",
             **{"x-error-code": "invalid_due_at"}))

_STR, _INT_N, _ARR = {"type": "string"}, {"type": ["integer", "null"]}, {"type": "array"}
CODE_OUT = out("app", "scene", "url", app=_STR, scene=_STR, url=STR_OUT, created_at=STR_OUT,
               expires_at={"type": ["string", "integer", "null"]}, ticket=STR_OUT, config_id=STR_OUT, user_id=STR_OUT)
BATCH_OUT = out("batch_id", "count", "channel", "reward", "state", "minted", "progress", batch_id=_STR, count=INT_OUT,
                channel=_STR, reward=out("coupon_template_id"),
                state={"type": "string", "enum": ["minting", "complete"]}, minted=INT_OUT, progress={"type": "number"}, created_at=STR_OUT, completed_at=STR_OUT)
FIGURES = out("contacts", "new_members", "converted_members", "gmv_cents", "execution_rate",
              contacts=INT_OUT, new_members=INT_OUT, converted_members=INT_OUT, gmv_cents=INT_OUT,
              tasks_assigned=INT_OUT, tasks_executed=INT_OUT, execution_rate={"type": ["number", "null"]})
TASK_FIGURES = dict(guides_assigned=INT_OUT, guides_executed=INT_OUT, execution_rate={"type": ["number", "null"]},
                    contacts_targeted=INT_OUT, contacts_sent=INT_OUT, buckets=ANY_OBJ)
TASK_OUT = out("task_id", "state", "name", "send_at", "due_at", "message", "guides_assigned", "execution_rate",
               task_id=_STR, state=_STR, name=_STR, guide_ids=_ARR, store_ids=_ARR, audience=ANY_OBJ,
               message=ANY_OBJ, send_at=_STR, due_at=_STR, timezone=_STR, created_at=STR_OUT, **TASK_FIGURES)
TASK_GUIDE_OUT = out("guide_id", "state", "executed", "contacts_targeted", "buckets", guide_id=_STR, store_id=STR_OUT,
                     wecom_user_id=STR_OUT, state=_STR, chunks=INT_OUT, executed={"type": "boolean"},
                     contacts_targeted=INT_OUT, contacts_sent=INT_OUT, buckets=ANY_OBJ, polled_at=STR_OUT)
RANGE_Q = {"from": DATE_Q["from"], "to": DATE_Q["to"]}
PAGE_Q = {"limit": s(description="1-200, default 50"), "cursor": s(description="next_cursor of the previous page")}
PAGE_ERRORS = ["invalid_limit", "invalid_cursor", "unknown_parameter"]
RANGE_ERRORS = ["invalid_from", "invalid_to", "invalid_range", "unknown_parameter"]
CODE_ERRORS = {400: ["invalid_app", "invalid_format", "invalid_skip_verify", "scene_too_long_for_mp"],
               404: ["unknown_channel", "app_not_configured"],
               409: ["code_quota_exceeded", "channel_has_no_wecom_guide", "wechat_config_error", "wechat_refused"],
               429: ["code_rate_limited"],
               503: ["code_being_created", "code_outcome_unknown", "code_image_unavailable", "wechat_unavailable"]}

ROUTES.update({
    ("PATCH", "/admin/{brand_id}/channels/{scene}"): Op(
        "Change a channel (fields left out keep their value; a new guide moves its WeCom code to them)", A,
        {200: CHANNEL_OUT}, request=CHANNEL_PATCH, tag="tenancy",
        errors={400: ["missing_store_id"], 404: ["unknown_channel", "unknown_coupon_template"],
                409: ["channel_has_no_wecom_guide", "wechat_config_error", "wechat_refused"],
                503: ["code_being_created", "wechat_unavailable"]},
        request_example={"source": "counter_poster", "tags": ["poster"], "welcome_message": "欢迎！"}),
    ("DELETE", "/admin/{brand_id}/channels/{scene}"): Op(
        "Delete a channel (its WeCom contact way too; an OA code stays WeChat's)", A,
        {200: out("scene", "deleted", scene=_STR, deleted={"type": "boolean"})}, tag="tenancy",
        errors={404: ["unknown_channel"], 409: ["wechat_config_error", "wechat_refused"],
                503: ["code_being_created", "wechat_unavailable"]}),
    ("GET", "/admin/{brand_id}/channels/{scene}/code"): Op(
        "A channel's printable code (?app=oa|mp|wecom): the PNG, or ?format=json its record", A,
        {200: {"description": "image/png: the code; application/json: " + ", ".join(CODE_OUT["properties"])}},
        query={"app": s(enum=["oa", "mp", "wecom"]), "format": s(enum=["png", "json"], default="png"),
               "skip_verify": s(enum=["true", "false"], default="true",
                                description="wecom: whether adding the guide skips their confirmation")},
        query_required=("app",), errors=CODE_ERRORS, tag="codes", response_type=("image/png", "application/json")),
    ("GET", "/admin/{brand_id}/stores/{store_id}/codes.pdf"): Op(
        "A store's code sheets: one A4 page per channel (?app=oa|mp|wecom, default oa)", A,
        {200: {"description": "application/pdf"}},
        query={"app": s(enum=["oa", "mp", "wecom"], default="oa")}, tag="codes", response_type="application/pdf",
        errors={**CODE_ERRORS, 404: ["unknown_store", "no_channel_codes", *CODE_ERRORS[404]]}),
    ("POST", "/admin/{brand_id}/package-codes"): Op(
        "Order a batch of package codes (minted by a worker; the same request again answers the batch)", A,
        {202: BATCH_OUT}, request=PACKAGE_BATCH, tag="codes",
        errors={404: ["unknown_channel", "unknown_coupon_template"], 409: ["batch_exists"]},
        request_example={"batch_id": "box-2026-11", "count": 1000, "channel": "S1",
                         "reward": {"coupon_template_id": "tpl_8k2m4q"}}),
    ("GET", "/admin/{brand_id}/package-codes/{batch_id}"): Op("A package-code batch and its minting progress", A,
                                                              {200: BATCH_OUT}, errors={404: ["unknown_batch"]},
                                                              tag="codes"),
    ("GET", "/admin/{brand_id}/package-codes/{batch_id}/codes.csv"): Op(
        "A complete batch's codes for the printer (`code,scene` lines)", A,
        {200: {"description": "text/csv"}}, errors={404: ["unknown_batch"],
                                                                       409: ["batch_not_complete"]},
        tag="codes", response_type="text/csv"),
    ("POST", "/guide/{brand_id}/login"): Op(
        "A guide signs in with a WeCom code (OAuth, or a WeCom mini-program's wx.qy.login) for a session", None,
        {200: out("session", "expires_at", "guide_id", "store_id", session=_STR, expires_at=INT_OUT, guide_id=_STR,
                  store_id=_STR)},
        request=GUIDE_LOGIN, tag="guides",
        errors={401: ["invalid_code", "code_used", "code_expired"], 403: ["not_a_guide"],
                404: ["app_not_configured"], 503: ["wechat_unavailable"]},
        request_example={"code": "wecom-oauth-code", "via": "oauth"}),
    ("GET", "/guide/{brand_id}/me"): Op(
        "My numbers over a range of days (brand's time zone)", G,
        {200: out("guide", "store", "from", "to", "timezone", "figures", guide=out("guide_id", "name"),
                  store=out("store_id"), timezone=_STR, figures=FIGURES,
                  **{"from": _STR, "to": _STR})},
        query=RANGE_Q, errors={400: RANGE_ERRORS}, tag="guides"),
    ("GET", "/guide/{brand_id}/me/members"): Op(
        "My members (first touch mine), newest first, with their coupons", G,
        {200: out("members", "cursor", members={"type": "array", "items": out("member_id", "tags", "coupons")},
                  cursor=STR_OUT)},
        query={"tag": s(), **PAGE_Q}, errors={400: PAGE_ERRORS + ["invalid_tag"]}, tag="guides"),
    ("POST", "/guide/{brand_id}/me/members/{member_id}/tags"): Op(
        "Add and remove tags of one of my members (mirrored to WeCom when they are my contact)", G,
        {200: out("member_id", "tags", "wecom_mirrored", member_id=_STR, tags={"type": "array", "items": _STR},
                  wecom_mirrored={"type": ["boolean", "null"]})},
        request=MEMBER_TAGS, tag="guides", errors={400: ["missing_tags", "invalid_tags"], 404: ["unknown_member"]},
        request_example={"add": ["vip"], "remove": ["new"]}),
    ("GET", "/guide/{brand_id}/me/tasks"): Op(
        "My tasks not yet done, newest first, with my own figures", G,
        {200: listing("tasks", out("task_id", "name", "state", "send_at", "due_at", "message", "mine",
                                   task_id=_STR, name=_STR, state=_STR, send_at=_STR, due_at=_STR, message=ANY_OBJ,
                                   mine={"type": ["object", "null"]}))}, tag="guides"),
    ("GET", "/admin/{brand_id}/guides/leaderboard"): Op(
        "The guides ranked by a metric over a range of days", A,
        {200: out("from", "to", "timezone", "metric", "rows", timezone=_STR, store_id=STR_OUT,
                  metric={"type": "string", "enum": ["new_members", "converted_members", "gmv_cents",
                                                     "execution_rate"]},
                  rows={"type": "array", "items": out("guide_id", "name", "store_id", "value", "rank",
                                                      rank=INT_OUT, value={"type": ["number", "null"]})},
                  **{"from": _STR, "to": _STR})},
        query={**RANGE_Q, "metric": s(enum=["new_members", "converted_members", "gmv_cents", "execution_rate"]),
               "store_id": s()},
        errors={400: RANGE_ERRORS + ["invalid_metric", "invalid_store_id"]}, tag="guides"),
    ("POST", "/admin/{brand_id}/guide-tasks"): Op(
        "Give guides a task: a WeCom customer message each sends to their own contacts in the audience", A,
        {201: TASK_OUT}, request=GUIDE_TASK, tag="guides",
        errors={400: ["missing_guides", "invalid_timezone", "unknown_guide",
                      "unknown_store", "guide_without_wecom", "no_guides", "too_many_guides", "invalid_schedule"],
                404: ["app_not_configured"], 503: ["scheduler_unavailable"]},
        request_example={"name": "双十一提醒", "store_ids": ["sz"], "audience": {"tags_any": ["vip"]},
                         "message": {"text": "今晚八点开抢"}, "send_at": "2027-11-10T10:00:00+08:00",
                         "due_at": "2027-11-11T10:00:00+08:00"}),
    ("GET", "/admin/{brand_id}/guide-tasks/{task_id}"): Op("A task with its execution rate and buckets", A,
                                                           {200: TASK_OUT}, errors={404: ["unknown_guide_task"]},
                                                           tag="guides"),
    ("GET", "/admin/{brand_id}/guide-tasks/{task_id}/guides"): Op(
        "A task's guides, each with their figures", A,
        {200: out("task_id", "guides", task_id=_STR, guides={"type": "array", "items": TASK_GUIDE_OUT})},
        errors={404: ["unknown_guide_task"]}, tag="guides"),
    # the console (issue 12): a store's day at the till, the brand's templates, the pages themselves
    ("GET", "/pos/{brand_id}/stores/{store_id}/redemptions"): Op(
        "A store's redemptions of one day (?day=YYYY-MM-DD, brand time zone), newest first", POS,
        {200: out("day", "timezone", "store_id", "redemptions", "next_cursor", day=_STR, timezone=_STR,
                  store_id=_STR, next_cursor=STR_OUT,
                  redemptions={"type": "array", "items": out(
                      "redemption_id", "code", "order_id", "order_amount_cents", "discount_cents", "redeemed_at",
                      redemption_id=_STR, code=_STR, template_id=STR_OUT, order_id=STR_OUT, till_id=STR_OUT,
                      order_amount_cents=INT_OUT, discount_cents=INT_OUT, redeemed_at=STR_OUT,
                      reversed_at=STR_OUT)})},
        query={"day": s(description="YYYY-MM-DD; default today"), **PAGE_Q},
        errors={400: ["invalid_day", *PAGE_ERRORS]}, tag="coupons"),
    ("GET", "/admin/{brand_id}/coupon-templates"): Op(
        "The brand's coupon templates, newest first (live counts: GET one)", A,
        {200: out("templates", "next_cursor", next_cursor=STR_OUT, templates={"type": "array", "items": out(
            "template_id", "name", "kind", "value", "flash_sale", template_id=_STR, name=_STR, kind=_STR,
            value=INT_OUT, min_spend_cents=INT_OUT, total_stock=_INT_N, flash_sale={"type": "boolean"},
            created_at=STR_OUT)})},
        query=PAGE_Q, errors={400: PAGE_ERRORS}, tag="coupons"),
    ("GET", "/console"): Op("The console's start page", None, {200: {"type": "string"}}, tag="console",
                            response_type="text/html"),
    ("GET", "/console/{console_file}"): Op("A console page or asset (till, dashboard, guide, their scripts)", None,
                                           {200: {"type": "string"}, 304: {}}, errors={404: ["unknown_page"]},
                                           tag="console", response_type=("text/html", "application/javascript",
                                                                          "text/css")),
})
