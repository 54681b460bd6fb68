"""The published contract, fuzzed: schemathesis generates requests from /openapi.json for every route
and sends them to the local stack with valid credentials for a seeded brand. No request may get a 5xx,
every response must match the schema declared for its status, every error must be siyu's error shape.

Bounded (CONTRACT_EXAMPLES per route, derandomized so a run is reproducible and ids are stable) so
the whole file stays well under two minutes in `make test`. Cases are both positive (bodies the schema
accepts: they reach the domain and storage) and negative (bodies it refuses: the refusal must be a 4xx
in the error shape), with the path's ids either real (a template, campaign, order of the seeded brand)
or generated (unknown ids: 404s).
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

import app as api_module
from chalicelib.contract_routes import ROUTES
from tests.integration.conftest import new_brand
from tests.integration.test_guide_workbench import guide_session

EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "8"))
# a longer hunt: CONTRACT_EXAMPLES=40 CONTRACT_SEED=1 (any integer; unset, every run sends the same cases)
SEED = os.environ.get("CONTRACT_SEED")
# every route app.py registers (one without a declaration fails here too, at ROUTES[...])
KEYS = sorted(((m, p) for p, methods in api_module.app.routes.items() for m in methods), key=lambda k: (k[1], k[0]))
# the renderer is 1 MB of vendored JavaScript with no input: one request proves it is served
LATER = datetime.now(timezone.utc) + timedelta(days=30)     # the seeded campaign stays scheduled
FIXED = {("GET", "/docs/redoc.standalone.js"), ("GET", "/docs"), ("GET", "/openapi.json")}
# generated from/to are rarely both dates in the allowed range
NO_DEFAULT_SUCCESS = {"/admin/{brand_id}/stats"}
# the DELETE deletes its channel and the PATCH moves its own to any store: each gets a channel of its
# own, so the routes after them still find S1 in store sz with its guide
REAL_FOR = {("DELETE", "/admin/{brand_id}/channels/{scene}"): {"scene": "fuzz-doomed"},
            ("PATCH", "/admin/{brand_id}/channels/{scene}"): {"scene": "fuzz-changed"}}
# a brand that passes the schema is written to SSM and the table (about 1 s on the emulator): a few suffice
FEW = {("POST", "/admin/brands"): 4}


@pytest.fixture(scope="module")
def target(stack, api):
    brand = new_brand(stack, api, "fuzz")
    template = brand.admin("POST", "/coupon-templates", {"name": "fuzz 5 off", "kind": "cash_off", "value": 500,
                                                         "valid_days_after_claim": 30}).json()["template_id"]
    campaign = brand.admin("POST", "/campaigns", {"name": "fuzz", "message": {"medium": "oa_custom", "text": "hi"},
                                                  "schedule": {"at": LATER.isoformat()}})
    assert campaign.status_code == 201, campaign.text
    pos = brand.pos_keys["sz"]
    order = api.call("POST", f"/pos/{brand.brand_id}/stores/sz/orders", pos, {"order_id": "fuzz-1",
                                                                              "amount_cents": 1000},
                     headers={"Idempotency-Key": "fuzz-order-1"})
    assert order.status_code == 201, order.text
    # the codes and guides routes' ids: a member of guide g1 (li, S1's guide), a package-code batch
    # minted to the end (its CSV answers only then), a task to the guides of store sz
    doomed = brand.admin("POST", "/channels", {"scene": "fuzz-doomed", "store_id": "sh", "source": "fuzz"})
    assert doomed.status_code == 201, doomed.text
    changed = brand.admin("POST", "/channels", {"scene": "fuzz-changed", "store_id": "sh", "source": "fuzz"})
    assert changed.status_code == 201, changed.text
    assert brand.subscribe("fuzz-o1", "S1").status_code == 200
    member = brand.member(openid="fuzz-o1")["member_id"]
    batch = brand.admin("POST", "/package-codes", {"batch_id": "fuzz-box", "count": 3, "channel": "S1",
                                                  "reward": {"coupon_template_id": template}})
    assert batch.status_code == 202, batch.text
    task = brand.admin("POST", "/guide-tasks", {
        "name": "fuzz task", "store_ids": ["sz"], "message": {"text": "hi"},
        "send_at": (datetime.now(timezone.utc) + timedelta(days=1)).isoformat(), "due_at": LATER.isoformat()})
    assert task.status_code == 201, task.text
    for _ in range(100):
        if brand.admin("GET", "/package-codes/fuzz-box").json()["state"] == "complete":
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the fuzz batch was not minted")
    doc = api.call("GET", "/openapi.json").json()
    # one key per security scheme; a route whose scheme has none here is fuzzed unauthenticated (its
    # refusals only): give a new scheme its key (e.g. guideSession from POST /guide/{brand_id}/login)
    return {
        "schema": schemathesis.openapi.from_dict(doc),
        "credentials": {"platformKey": stack.platform_key, "brandAdminKey": brand.admin_key, "posKey": pos,
                        "shopperSession": brand.mp_session("fuzz-shopper", "fuzz-union"),
                        "guideSession": guide_session(brand, "li")},
        "fixed": {"brand_id": brand.brand_id, "store_id": "sz"},
        "real": {"template_id": template, "campaign_id": campaign.json()["campaign_id"], "order_id": "fuzz-1",
                 "scene": "S1", "member_id": member, "batch_id": "fuzz-box",
                 "task_id": task.json()["task_id"], "console_file": "till"},
        "base_url": stack.api_url,
    }


def error_shaped(response) -> bool:
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    return (isinstance(error, dict) and isinstance(error.get("code"), str) and error["code"]
            and isinstance(error.get("message"), str) and bool(error["message"]))


@pytest.mark.parametrize("method,path", KEYS, ids=[f"{m} {p}" for m, p in KEYS])
def test_route_keeps_its_contract(target, method, path):
    operation = target["schema"][path][method]
    names = {p["name"] for p in operation.definition.raw.get("parameters", []) if p.get("in") == "path"}
    fixed = {k: v for k, v in target["fixed"].items() if k in names}
    real = {**fixed, **{k: v for k, v in {**target["real"], **REAL_FOR.get((method, path), {})}.items() if k in names}}
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real),
                      operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed),
                      operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=real))
    example = ROUTES[(method, path)].request_example
    if example is not None:      # the documented example, which reaches the route's success path
        cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real, body=example), cases)
    scheme = ROUTES[(method, path)].auth
    key = target["credentials"].get(scheme)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    http = requests.Session()
    seen: list[int] = []

    examples = 1 if (method, path) in FIXED else FEW.get((method, path), EXAMPLES)

    @settings(max_examples=examples, deadline=None, database=None,
              derandomize=SEED is None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def run(case):
        response = case.call(base_url=target["base_url"], session=http, headers=headers, timeout=30)
        seen.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance,
                                                 status_code_conformance])
        if response.status_code >= 400:
            assert error_shaped(response), (response.status_code, response.text[:300])

    if SEED is not None:
        run = seed(int(SEED))(run)
    run()
    assert seen and all(status < 500 for status in seen)
    if key and method == "GET" and names <= set(real) and path not in NO_DEFAULT_SUCCESS:
        # the credentials and the seeded ids work: the fuzz reached the route's success, not only its refusals
        # (asked where the fixture seeds every id in the path)
        assert any(200 <= status < 300 for status in seen), seen
