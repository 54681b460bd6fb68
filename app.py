"""siyu's HTTP API: a table of contents. Each route parses, authorizes, calls a service, shapes the reply."""
from __future__ import annotations

import functools
import importlib

from chalice import Chalice, Response

from chalicelib import health as readiness
from chalicelib import chalice_errors, ids, untrusted
from chalicelib.errors import ApiError, BadRequest, NotFound, Unavailable, dependency_outage
from chalicelib.observability import flush_metrics, logger, traced
from chalicelib.services import admin, auth, callbacks, mp_sessions

app = Chalice(app_name="siyu")


class _OnFirstUse:
    """A service module imported when a route first needs it: a container that only answers WeChat
    callbacks (the cold start that must fit in WeChat's 5 s) never loads coupons or campaigns."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


coupons = _OnFirstUse("chalicelib.services.coupons")
campaigns = _OnFirstUse("chalicelib.services.campaigns")
orders = _OnFirstUse("chalicelib.services.orders")
scoreboard = _OnFirstUse("chalicelib.services.scoreboard")

WECHAT_CONTENT_TYPES = ["text/xml", "application/xml", "application/json", "text/plain",
                        "application/octet-stream", "application/x-www-form-urlencoded"]


def api(path: str, methods=("GET",), content_types=None):
    """Register a route whose ApiErrors become `{"error": {"code", "message"}}` with their 4xx status.
    An AWS outage (unreachable, or throttling beyond botocore's retries) is a 503 `unavailable` with
    Retry-After, logged as an outage rather than a bug: the caller was told nothing succeeded and may
    retry (each change commits as one conditional write or transaction, so a retry cannot double it).
    Anything else is a bug: logged with its stack and answered 500 in the same shape."""
    def register(view):
        @functools.wraps(view)
        def guarded(**params):
            try:
                ids.path_params(params)
                return view(**params)
            except ApiError as err:
                return Response(err.body(), status_code=err.status, headers=err.headers())
            except Exception as err:  # noqa: BLE001 - the one place a bug becomes a 500
                outage = dependency_outage(err)
                if outage is None:
                    logger.exception("unhandled error", extra={"path": path})
                    return Response({"error": {"code": "internal", "message": "internal error; it has been logged"}},
                                    status_code=500)
                readiness.record_outage(outage)
                logger.warning("dependency outage", extra={"path": path, "outage": outage, "error": repr(err)})
                refusal = Unavailable(f"a service siyu depends on is unavailable ({outage}); retry later")
                return Response(refusal.body(), status_code=refusal.status, headers=refusal.headers())
        options = {"methods": list(methods)}
        if content_types:
            options["content_types"] = content_types
        return app.route(path, **options)(guarded)
    return register


@app.middleware("http")
def observe(event, get_response):
    logger.clear_state()
    logger.append_keys(request_id=event.context.get("requestId"), path=event.path)
    # one X-Ray subsegment per request, annotated with its path (a no-op unless tracing is on in Lambda)
    with traced("## request", path=event.path):
        try:
            return get_response(event)
        finally:
            flush_metrics()


@app.middleware("http")
def chalice_errors_in_siyu_shape(event, get_response):
    """405/415 that chalice answers before a view runs get siyu's error shape (chalicelib.chalice_errors)."""
    return chalice_errors.in_siyu_shape(get_response(event), event, app.routes)


def body() -> dict:
    value = untrusted.loads(app.current_request.raw_body or b"{}")
    if not isinstance(value, dict):
        raise BadRequest("body must be a JSON object", code="malformed_json")
    declared(value)
    return value


def declared(value: dict) -> None:
    """Refuse a body or header that breaks the route's declaration (chalicelib.contract_routes: the same
    one /openapi.json publishes), before any domain parse. Imported on first use: a container that
    only answers WeChat callbacks never loads it."""
    from chalicelib import contract, contract_routes
    request = app.current_request
    op = contract_routes.ROUTES.get((request.method, (request.context or {}).get("resourcePath")))
    if op is not None:
        contract.check_request(op, request.headers, value)


def caller() -> auth.Principal:
    return auth.authenticate(app.current_request.headers)


# A 201 that shows a key (shown once, stored hashed) must not sit in any cache on its way back.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def created(payload: dict, *, carries_key: bool = False) -> Response:
    return Response(payload, status_code=201, headers=dict(NO_STORE) if carries_key else None)


# ---- health ----------------------------------------------------------------------------------

@api("/health")
def health():
    """200 when this function can serve: its configuration is complete and no request met an AWS
    outage lately. Answered from memory (chalicelib.health): no network call per probe."""
    missing = readiness.missing_configuration()
    if missing:
        return Response({"error": {"code": "misconfigured", "missing": missing,
                                   "message": "this function lacks configuration: " + ", ".join(missing)}},
                        status_code=503)
    outage = readiness.recent_outage()
    if outage is not None:
        ago, what = outage
        refusal = Unavailable(f"a request {ago:.0f} s ago found a dependency unavailable ({what})")
        return Response(refusal.body(), status_code=refusal.status, headers=refusal.headers())
    return {"ok": True}


# ---- tenancy ---------------------------------------------------------------------------------

@api("/admin/brands", methods=["POST"])
def create_brand():
    auth.require_platform(caller())
    return created(admin.create_brand(body()), carries_key=True)


@api("/admin/{brand_id}", methods=["GET"])
def get_brand(brand_id):
    auth.require_brand_admin(caller(), brand_id)
    return admin.get_brand(brand_id)


@api("/admin/{brand_id}/stores", methods=["POST", "GET"])
def stores(brand_id):
    auth.require_brand_admin(caller(), brand_id)
    if app.current_request.method == "GET":
        return {"stores": admin.list_config(brand_id, "stores")}
    return created(admin.create_store(brand_id, body()), carries_key=True)


@api("/admin/{brand_id}/guides", methods=["POST", "GET"])
def guides(brand_id):
    auth.require_brand_admin(caller(), brand_id)
    if app.current_request.method == "GET":
        return {"guides": admin.list_config(brand_id, "guides")}
    return created(admin.create_guide(brand_id, body()))


@api("/admin/{brand_id}/channels", methods=["POST", "GET"])
def channels(brand_id):
    auth.require_brand_admin(caller(), brand_id)
    if app.current_request.method == "GET":
        return {"channels": admin.list_config(brand_id, "channels")}
    fields = body()
    template = fields.get("welcome_coupon_template_id")
    checks = coupons.template_exists_check(brand_id, template) if isinstance(template, str) else None
    return created(admin.create_channel(brand_id, fields, extra_checks=checks))


@api("/admin/{brand_id}/members", methods=["GET"])
def find_member(brand_id):
    auth.require_brand_admin(caller(), brand_id)
    return admin.find_member(brand_id, app.current_request.query_params or {}, extend=coupons.wallet)


# ---- WeChat callbacks ------------------------------------------------------------------------

def _wechat(brand_id: str, kind: str):
    request = app.current_request
    query = request.query_params or {}
    if request.method == "GET":
        reply = callbacks.verify_url(brand_id, kind, query)
    else:
        reply = callbacks.receive(brand_id, kind, query, request.raw_body or b"")
    return Response(reply.body, status_code=reply.status, headers={"Content-Type": reply.content_type})


@api("/wechat/{brand_id}/oa", methods=["GET", "POST"], content_types=WECHAT_CONTENT_TYPES)
def wechat_oa(brand_id):
    return _wechat(brand_id, "oa")


@api("/wechat/{brand_id}/mp", methods=["GET", "POST"], content_types=WECHAT_CONTENT_TYPES)
def wechat_mp(brand_id):
    return _wechat(brand_id, "mp")


@api("/wechat/{brand_id}/wecom", methods=["GET", "POST"], content_types=WECHAT_CONTENT_TYPES)
def wechat_wecom(brand_id):
    return _wechat(brand_id, "wecom")


# ---- mini-program ----------------------------------------------------------------------------

@api("/mp/{brand_id}/login", methods=["POST"])
def mp_login(brand_id):
    code = body().get("code")
    if not isinstance(code, str) or not code.strip() or len(code) > 128:
        raise BadRequest("code (from wx.login) is required", code="missing_code")
    return mp_sessions.login(brand_id, code.strip())


@api("/mp/{brand_id}/scan", methods=["POST"])
def mp_scan(brand_id):
    session = mp_sessions.verify(brand_id, app.current_request.headers)
    fields = body()
    if isinstance(fields.get("scene"), str) and fields["scene"].startswith("pk."):     # a package code (§2)
        status, answer = package_codes.scan(brand_id, session, fields["scene"])
        return Response(answer, status_code=status)
    return mp_sessions.scan(brand_id, session, fields)


# ---- coupons ---------------------------------------------------------------------------------

@api("/admin/{brand_id}/coupon-templates", methods=["POST"])
def create_coupon_template(brand_id):
    auth.require_brand_admin(caller(), brand_id)
    return created(coupons.create_template(brand_id, body()))


@api("/admin/{brand_id}/coupon-templates/{template_id}", methods=["GET"])
def get_coupon_template(brand_id, template_id):
    auth.require_brand_admin(caller(), brand_id)
    return coupons.get_template(brand_id, template_id)


@api("/admin/{brand_id}/coupon-templates/{template_id}/stats", methods=["GET"])
def coupon_template_stats(brand_id, template_id):
    auth.require_brand_admin(caller(), brand_id)
    return coupons.template_stats(brand_id, template_id, app.current_request.query_params)


@api("/mp/{brand_id}/coupon-templates/{template_id}/claim", methods=["POST"])
def claim_coupon(brand_id, template_id):
    session = mp_sessions.verify(brand_id, app.current_request.headers)
    return created(coupons.claim(brand_id, session, template_id))


@api("/mp/{brand_id}/me/coupons", methods=["GET"])
def my_coupons(brand_id):
    return coupons.my_wallet(brand_id, mp_sessions.verify(brand_id, app.current_request.headers))


@api("/mp/{brand_id}/me/member-code", methods=["GET"])
def my_member_code(brand_id):
    return coupons.my_member_code(brand_id, mp_sessions.verify(brand_id, app.current_request.headers))


@api("/pos/{brand_id}/stores/{store_id}/member-lookup", methods=["POST"])
def member_lookup(brand_id, store_id):
    auth.require_store(caller(), brand_id, store_id)
    return coupons.member_lookup(brand_id, store_id, body())


@api("/pos/{brand_id}/stores/{store_id}/redemptions", methods=["POST"])
def redeem_coupon(brand_id, store_id):
    auth.require_store(caller(), brand_id, store_id)
    status, answer = coupons.redeem(brand_id, store_id, body(), app.current_request.headers.get("idempotency-key"))
    return Response(answer, status_code=status)


@api("/pos/{brand_id}/stores/{store_id}/redemptions/{redemption_id}/reversal", methods=["POST"])
def reverse_redemption(brand_id, store_id, redemption_id):
    auth.require_store(caller(), brand_id, store_id)
    return coupons.reverse(brand_id, store_id, redemption_id)


# ---- orders ----------------------------------------------------------------------------------

@api("/pos/{brand_id}/stores/{store_id}/orders", methods=["POST"])
def record_order(brand_id, store_id):
    auth.require_store(caller(), brand_id, store_id)
    status, answer = orders.record_at_till(brand_id, store_id, body(), app.current_request.headers.get("idempotency-key"))
    return Response(answer, status_code=status)


@api("/pos/{brand_id}/stores/{store_id}/orders/{order_id}/refunds", methods=["POST"])
def refund_order(brand_id, store_id, order_id):
    auth.require_store(caller(), brand_id, store_id)
    status, answer = orders.refund_at_till(brand_id, store_id, order_id, body(),
                                           app.current_request.headers.get("idempotency-key"))
    return Response(answer, status_code=status)


@api("/admin/{brand_id}/order-imports", methods=["POST"])
def import_orders(brand_id):
    auth.require_brand_admin(caller(), brand_id)
    return orders.import_orders(brand_id, body())


@api("/admin/{brand_id}/stats", methods=["GET"])
def brand_stats(brand_id):
    auth.require_brand_admin(caller(), brand_id)
    return scoreboard.stats(brand_id, app.current_request.query_params)


# ---- campaigns -------------------------------------------------------------------------------


@api("/admin/{brand_id}/campaigns", methods=["POST", "GET"])
def campaigns_collection(brand_id):
    auth.require_brand_admin(caller(), brand_id)
    if app.current_request.method == "GET":
        return {"campaigns": campaigns.list_campaigns(brand_id)}
    return created(campaigns.create_campaign(brand_id, body()))


@api("/admin/{brand_id}/campaigns/{campaign_id}", methods=["GET"])
def get_campaign(brand_id, campaign_id):
    auth.require_brand_admin(caller(), brand_id)
    return campaigns.get_campaign(brand_id, campaign_id)


@api("/admin/{brand_id}/campaigns/{campaign_id}/pause", methods=["POST"])
def pause_campaign(brand_id, campaign_id):
    auth.require_brand_admin(caller(), brand_id)
    return campaigns.act(brand_id, campaign_id, "pause")


@api("/admin/{brand_id}/campaigns/{campaign_id}/resume", methods=["POST"])
def resume_campaign(brand_id, campaign_id):
    auth.require_brand_admin(caller(), brand_id)
    return campaigns.act(brand_id, campaign_id, "resume")


@api("/admin/{brand_id}/campaigns/{campaign_id}/cancel", methods=["POST"])
def cancel_campaign(brand_id, campaign_id):
    auth.require_brand_admin(caller(), brand_id)
    return campaigns.act(brand_id, campaign_id, "cancel")


@api("/admin/{brand_id}/campaigns/{campaign_id}/deliveries", methods=["GET"])
def campaign_deliveries(brand_id, campaign_id):
    auth.require_brand_admin(caller(), brand_id)
    return campaigns.deliveries(brand_id, campaign_id, app.current_request.query_params or {})


@api("/mp/{brand_id}/me/subscriptions", methods=["POST", "GET"])
def my_subscriptions(brand_id):
    session = mp_sessions.verify(brand_id, app.current_request.headers)
    if app.current_request.method == "GET":
        return campaigns.my_subscriptions(brand_id, session)
    return campaigns.subscribe_from_app(brand_id, session, body())


# ---- guides (the guide's workbench: chalicelib.services.guides) -------------------------------

guides_svc = _OnFirstUse("chalicelib.services.guides")


def _query() -> dict:
    return app.current_request.query_params or {}


@api("/guide/{brand_id}/login", methods=["POST"])
def guide_login(brand_id):
    return guides_svc.login(brand_id, body())


@api("/guide/{brand_id}/me", methods=["GET"])
def guide_me(brand_id):
    return guides_svc.me(brand_id, guides_svc.verify(brand_id, app.current_request.headers), _query())


@api("/guide/{brand_id}/me/members", methods=["GET"])
def guide_members(brand_id):
    session = guides_svc.verify(brand_id, app.current_request.headers)
    return guides_svc.my_members(brand_id, session, _query(), wallet=coupons.wallet)


@api("/guide/{brand_id}/me/members/{member_id}/tags", methods=["POST"])
def guide_member_tags(brand_id, member_id):
    session = guides_svc.verify(brand_id, app.current_request.headers)
    return guides_svc.change_tags(brand_id, session, member_id, body())


@api("/admin/{brand_id}/guides/leaderboard", methods=["GET"])
def guides_leaderboard(brand_id):
    auth.require_brand_admin(caller(), brand_id)
    return guides_svc.leaderboard(brand_id, _query())


# ---- head-office tasks to guides (chalicelib.services.guide_tasks) ----------------------------

guide_tasks = _OnFirstUse("chalicelib.services.guide_tasks")


@api("/admin/{brand_id}/guide-tasks", methods=["POST"])
def create_guide_task(brand_id):
    auth.require_brand_admin(caller(), brand_id)
    return created(guide_tasks.create_task(brand_id, body()))


@api("/admin/{brand_id}/guide-tasks/{task_id}", methods=["GET"])
def get_guide_task(brand_id, task_id):
    auth.require_brand_admin(caller(), brand_id)
    return guide_tasks.get_task(brand_id, task_id)


@api("/admin/{brand_id}/guide-tasks/{task_id}/guides", methods=["GET"])
def guide_task_guides(brand_id, task_id):
    auth.require_brand_admin(caller(), brand_id)
    return guide_tasks.task_guides(brand_id, task_id)


@api("/guide/{brand_id}/me/tasks", methods=["GET"])
def guide_my_tasks(brand_id):
    return guide_tasks.my_tasks(brand_id, guides_svc.verify(brand_id, app.current_request.headers))
# ---- printable codes (issue 11 §1) -----------------------------------------------------------

codes = _OnFirstUse("chalicelib.services.codes")
package_codes = _OnFirstUse("chalicelib.services.package_codes")
code_sheets = _OnFirstUse("chalicelib.services.code_sheets")
# API Gateway passes a PDF through as bytes only when its type is a binary media type (PNG already is)
if "application/pdf" not in app.api.binary_types:
    app.api.binary_types.append("application/pdf")


@api("/admin/{brand_id}/channels/{scene}", methods=["PATCH", "DELETE"])
def channel(brand_id, scene):
    auth.require_brand_admin(caller(), brand_id)
    if app.current_request.method == "DELETE":
        return codes.delete_channel(brand_id, scene)
    fields = body()
    template = fields.get("welcome_coupon_template_id")
    checks = coupons.template_exists_check(brand_id, template) if isinstance(template, str) else None
    return codes.update_channel(brand_id, scene, fields, extra_checks=checks)


@api("/admin/{brand_id}/channels/{scene}/code", methods=["GET"])
def channel_code(brand_id, scene):
    auth.require_brand_admin(caller(), brand_id)
    content_type, payload = codes.code(brand_id, scene, app.current_request.query_params)
    if content_type == "application/json":
        return payload
    return Response(payload, headers={"Content-Type": content_type, "Cache-Control": "private, max-age=300"})


@api("/admin/{brand_id}/stores/{store_id}/codes.pdf", methods=["GET"])
def store_code_sheets(brand_id, store_id):
    auth.require_brand_admin(caller(), brand_id)
    pdf = code_sheets.store_sheets(brand_id, store_id, app.current_request.query_params)
    return Response(pdf, headers={"Content-Type": "application/pdf",
                                  "Content-Disposition": f'inline; filename="{store_id}-codes.pdf"'})


# ---- package codes (issue 11 §2) -------------------------------------------------------------

@api("/admin/{brand_id}/package-codes", methods=["POST"])
def create_package_codes(brand_id):
    auth.require_brand_admin(caller(), brand_id)
    status, answer = package_codes.create(brand_id, body())
    return Response(answer, status_code=status)


@api("/admin/{brand_id}/package-codes/{batch_id}", methods=["GET"])
def package_code_batch(brand_id, batch_id):
    auth.require_brand_admin(caller(), brand_id)
    return package_codes.get(brand_id, batch_id)


@api("/admin/{brand_id}/package-codes/{batch_id}/codes.csv", methods=["GET"])
def package_code_csv(brand_id, batch_id):
    auth.require_brand_admin(caller(), brand_id)
    return Response(package_codes.csv(brand_id, batch_id),
                    headers={"Content-Type": "text/csv; charset=utf-8",
                             "Content-Disposition": f'attachment; filename="{batch_id}.csv"'})
# ---- the console (issue 12): the till's day, and the pages themselves ------------------------

console_api = _OnFirstUse("chalicelib.services.console_api")


@api("/pos/{brand_id}/stores/{store_id}/redemptions", methods=["GET"])
def store_redemptions(brand_id, store_id):
    auth.require_store(caller(), brand_id, store_id)
    return console_api.store_day(brand_id, store_id, app.current_request.query_params)


@api("/admin/{brand_id}/coupon-templates", methods=["GET"])
def list_coupon_templates(brand_id):
    auth.require_brand_admin(caller(), brand_id)
    return console_api.templates(brand_id, app.current_request.query_params)


console_pages = _OnFirstUse("chalicelib.console_pages")


def _console(name: str) -> Response:
    status, text, headers = console_pages.serve(name, app.current_request.headers.get("if-none-match"))
    if status == 404:
        raise NotFound(f"no console page {name}", code="unknown_page")
    return Response(text, status_code=status, headers=headers)


@api("/console", methods=["GET"])
def console_index():
    return _console("")


@api("/console/{console_file}", methods=["GET"])
def console_file(console_file):
    return _console(console_file)
# ---- the contract ----------------------------------------------------------------------------

@api("/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 document, built on first request from the declarations that validate requests."""
    from chalicelib import contract_routes
    return contract_routes.document(app.routes, app.current_request.context or {})


@api("/docs")
def api_reference():
    from chalicelib import contract_routes
    return Response(contract_routes.REFERENCE_PAGE, headers={"Content-Type": "text/html; charset=utf-8"})


@api("/docs/redoc.standalone.js")
def api_reference_renderer():
    from chalicelib import contract_routes
    return Response(contract_routes.renderer(), headers={"Content-Type": "application/javascript; charset=utf-8",
                                                         "Cache-Control": "public, max-age=86400"})


# ---- the campaign form's audience preview and the brand's guide tasks (chalicelib.services.campaign_preview,
# chalicelib.services.task_list) -----------------------------------------------------------------

campaign_preview = _OnFirstUse("chalicelib.services.campaign_preview")
task_list = _OnFirstUse("chalicelib.services.task_list")


@api("/admin/{brand_id}/campaigns/preview", methods=["POST"])
def preview_campaign_audience(brand_id):
    auth.require_brand_admin(caller(), brand_id)
    return campaign_preview.preview(brand_id, body())


@api("/admin/{brand_id}/guide-tasks", methods=["GET"])
def list_guide_tasks(brand_id):
    auth.require_brand_admin(caller(), brand_id)
    return task_list.list_tasks(brand_id, _query())
