"""The console's pages as deployed: served by the API function from the packaged chalicelib/console/,
through API Gateway proxy events, with only the layer and the runtime SDK importable."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.lambda_smoke.events import rest_event

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def api(start_function):
    return start_function("siyu-api", "app.app", memory=512, timeout=10)


@pytest.mark.parametrize("resource, path, params, file, content_type", [
    ("/console", "/console", None, "index.html", "text/html; charset=utf-8"),
    ("/console/{console_file}", "/console/till", {"console_file": "till"}, "till.html", "text/html; charset=utf-8"),
    ("/console/{console_file}", "/console/dashboard.js", {"console_file": "dashboard.js"}, "dashboard.js",
     "text/javascript; charset=utf-8"),
    ("/console/{console_file}", "/console/uPlot.iife.min.js", {"console_file": "uPlot.iife.min.js"},
     "uPlot.iife.min.js", "text/javascript; charset=utf-8"),
])
def test_the_deployed_api_serves_the_packaged_pages(api, resource, path, params, file, content_type):
    reply, _trace = api.invoke(rest_event("GET", resource, path, path_params=params))
    assert reply["ok"], reply
    result = reply["result"]
    assert result["statusCode"] == 200, result
    headers = {k.lower(): v for k, v in result["headers"].items()}
    assert headers["content-type"] == content_type and "etag" in headers
    assert result["body"] == (ROOT / "chalicelib" / "console" / file).read_text(encoding="utf-8")
    assert not result.get("isBase64Encoded")


def test_an_unknown_file_is_a_404_in_siyus_shape(api):
    reply, _trace = api.invoke(rest_event("GET", "/console/{console_file}", "/console/app.py",
                                          path_params={"console_file": "app.py"}))
    assert reply["ok"], reply
    assert reply["result"]["statusCode"] == 404
    assert '"unknown_page"' in reply["result"]["body"]
