"""The local stack's servers hold a burst of connections, and the API answers what it has no route for
in siyu's error shape.

A burst: N clients connect at the same instant (a barrier), each on its own connection, and send one
request. A listen backlog smaller than the burst makes the kernel drop or reset connections before the
server accepts them; every one of the N must get its answer.
"""
from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import threading

import pytest
import requests

from tests.integration.campaign_fixtures import clear_fault, fault

BURST = 150                     # the issue asks for at least 100 concurrent connections
JSCODE2SESSION = "sns/jscode2session"


def burst(port: int, n: int, request) -> list[object]:
    """`request(conn, i)` on n fresh connections to 127.0.0.1:port opened at once; each outcome is the
    HTTP status or the exception the client saw."""
    barrier = threading.Barrier(n)
    outcomes: list[object] = [None] * n

    def one(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            barrier.wait(timeout=60)
            conn.connect()
            request(conn, i)
            resp = conn.getresponse()
            resp.read()
            outcomes[i] = resp.status
        except Exception as err:  # noqa: BLE001 - the outcome under test
            outcomes[i] = err
        finally:
            conn.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return outcomes


def failures(outcomes: list[object], ok: int = 200) -> list[str]:
    return [repr(o) for o in outcomes if o != ok]


def test_the_api_holds_a_burst_of_150_slow_logins_with_no_connection_dropped(stack, brand):
    """150 shoppers log in at once while WeChat takes a second to answer jscode2session: every
    connection to the API (and from it to the simulator) is held until its answer."""
    codes = [requests.post(f"{stack.wechat_url}/__sim/codes", timeout=10,
                           json={"openid": f"o_burst_{i}", "app_id": brand.app("mp")["app_id"]}).json()["code"]
             for i in range(BURST)]
    fault(stack, JSCODE2SESSION, latency_ms=1000)
    try:
        outcomes = burst(stack.api_port, BURST, lambda conn, i: conn.request(
            "POST", f"/mp/{brand.brand_id}/login", body=json.dumps({"code": codes[i]}),
            headers={"Content-Type": "application/json"}))
    finally:
        clear_fault(stack, JSCODE2SESSION)
    assert failures(outcomes) == []


def test_the_wechat_simulator_holds_a_burst_of_150_slow_calls(stack):
    fault(stack, "sns/burst-probe", latency_ms=1000)
    try:
        outcomes = burst(stack.wechat_port, BURST, lambda conn, i: conn.request("GET", "/sns/burst-probe"))
    finally:
        clear_fault(stack, "sns/burst-probe")
    assert failures(outcomes, ok=404) == []         # answered (no such API), not dropped


def test_the_aws_emulator_holds_a_burst_of_150_requests(stack):
    """DynamoDB requests queue behind the emulator's lock, so a burst is also a slow route there."""
    from chalicelib.storage.models import Item
    body = json.dumps({"TableName": Item.Meta.table_name})
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.DescribeTable",
               "Authorization": "AWS4-HMAC-SHA256 Credential=local/20250101/cn-north-1/dynamodb/aws4_request, "
                                "SignedHeaders=host, Signature=0"}
    outcomes = burst(stack.aws_port, BURST, lambda conn, i: conn.request("POST", "/", body=body, headers=headers))
    assert failures(outcomes) == []


SECRET = "Bearer sk_platform_do_not_echo_me"


def test_an_unknown_path_is_a_404_in_siyu_shape_and_echoes_no_credentials(stack):
    for method, path in [("GET", "/no/such/route"), ("POST", "/admin/b1/no-such-thing?x=1"), ("DELETE", "/")]:
        r = requests.request(method, stack.api_url + path, headers={"Authorization": SECRET}, timeout=10)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found" and r.json()["error"]["message"]
        assert set(r.json()) == {"error"}
        assert "do_not_echo" not in r.text and all("do_not_echo" not in v for v in r.headers.values())


def test_a_wrong_method_is_a_405_in_siyu_shape_with_the_allowed_methods(stack, brand):
    r = requests.delete(f"{stack.api_url}/admin/{brand.brand_id}/stores",
                        headers={"Authorization": f"Bearer {brand.admin_key}"}, timeout=10)
    assert r.status_code == 405, r.text
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert set(r.headers["Allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    assert brand.admin_key not in r.text


def test_a_wrong_content_type_is_a_415_in_siyu_shape_and_changes_nothing(stack, brand):
    from tests.integration.conftest import table_items
    before = table_items()
    r = requests.post(f"{stack.api_url}/admin/{brand.brand_id}/stores", data=b"store_id=x",
                      headers={"Authorization": f"Bearer {brand.admin_key}",
                               "Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert r.status_code == 415, r.text
    assert r.json()["error"]["code"] == "unsupported_media_type"
    assert "application/json" in r.json()["error"]["message"]
    assert table_items() == before


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read a listening socket's backlog")
def test_every_local_server_listens_with_a_backlog_for_bursts(stack):
    """The bursts above prove the API; the emulator and the simulator held 150 with werkzeug's and
    http.server's 128 too, so their backlog is read from the kernel (`ss`: Send-Q of a LISTEN socket)."""
    from siyu_dev.listen import LISTEN_BACKLOG
    for port in (stack.api_port, stack.aws_port, stack.wechat_port):
        shown = subprocess.run(["ss", "-Hlnt", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
        backlogs = [int(line.split()[2]) for line in shown.splitlines() if line.startswith("LISTEN")]
        assert backlogs == [LISTEN_BACKLOG], (port, shown)
