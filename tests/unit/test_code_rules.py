"""Printable codes: the pure rules, the sheet renderer, and the API's cold start without reportlab."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.domain import codes as rules
from chalicelib.errors import BadRequest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("query,code", [({}, "invalid_app"), ({"app": "tv"}, "invalid_app"),
                                        ({"app": "oa", "format": "gif"}, "invalid_format")])
def test_bad_code_requests_are_refused(query, code):
    with pytest.raises(BadRequest) as refused:
        rules.parse_request(query)
    assert refused.value.code == code


def test_defaults_to_png():
    assert rules.parse_request({"app": "wecom"}) == ("wecom", "png")


def test_mp_scenes_are_at_most_32_characters():
    rules.check_scene("mp", "x" * 32)
    rules.check_scene("oa", "x" * 64)
    with pytest.raises(BadRequest) as refused:
        rules.check_scene("mp", "x" * 33)
    assert refused.value.code == "scene_too_long_for_mp"


def test_quota_share_and_minute_windows():
    assert rules.used_percent("oa", 80_000) == 80.0
    assert rules.used_percent("wecom", 250_000) == 50.0
    assert rules.used_percent("mp", 10) is None
    assert rules.minute(120.5) == 2 and rules.seconds_to_next_minute(119.5) == 1
    assert rules.claim_expired(0, rules.CLAIM_LEASE_SECONDS) and not rules.claim_expired(0, 1)


def test_the_sheet_renders_chinese_with_the_builtin_cid_font():
    segno = pytest.importorskip("segno")
    from chalicelib.services.code_sheets import render
    png = io.BytesIO()
    segno.make("http://weixin.qq.com/q/x").save(png, kind="png", scale=4)
    lines = rules.sheet_lines(app="oa", store_name="深圳一店", guide_name="李娜", scene="S1", source="poster")
    pdf = render([(lines, png.getvalue())] * 2)
    assert pdf.startswith(b"%PDF") and b"STSong-Light" in pdf
    assert pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") == 2


def test_the_api_cold_start_does_not_import_reportlab():
    code = "import sys, app; print('reportlab' in sys.modules, 'PIL' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.split() == ["False", "False"], out.stderr
