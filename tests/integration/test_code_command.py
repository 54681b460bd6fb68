"""`python -m siyu_dev code` (make run's walk-through): prints a channel's code, scans it, shows the member."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("app,who", [("oa", "--openid"), ("wecom", "--external-userid")])
def test_code_command_prints_scans_and_shows_the_attributed_member(stack, brand, tmp_path, app, who):
    state = tmp_path / "demo.json"
    state.write_text(json.dumps({"api_url": stack.api_url, "aws_url": stack.aws_url, "wechat_url": stack.wechat_url,
                                 "platform_key": stack.platform_key, "brand": brand.body,
                                 "admin_key": brand.admin_key}))
    shopper = f"cmd-{app}-shopper"
    done = subprocess.run([sys.executable, "-m", "siyu_dev", "code", "--brand", brand.brand_id, "--scene", "S1",
                           "--app", app, who, shopper, "--pdf", "sz"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), "SIYU_LOCAL_STATE": str(state)})
    assert done.returncode == 0, done.stdout + done.stderr
    png = tmp_path / f"code-{brand.brand_id}-S1-{app}.png"
    assert png.read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / f"codes-{brand.brand_id}-sz-{app}.pdf").read_bytes().startswith(b"%PDF")
    assert '"store_id": "sz"' in done.stdout and '"guide_id": "g1"' in done.stdout, done.stdout
    member = brand.member(**({"openid": shopper} if app == "oa" else {"external_userid": shopper}))
    assert member["first_touch"]["scene"] == "S1"
