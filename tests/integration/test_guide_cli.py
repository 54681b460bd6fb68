"""`python -m siyu_dev guide` (make run's walk-through, step 8) against the test stack: the guide signs in
from WeCom, sees their numbers and members, tags one, and receives a head-office task that reaches WeCom."""
from __future__ import annotations

import json

from tests.integration.test_dev_commands import siyu_dev
from tests.integration.test_guide_workbench import wecom_event


def test_the_guide_command_shows_the_workbench_and_a_task(brand, stack, tmp_path):
    wecom_event(brand, "add", "li", "wm_cli_1", state="S1")
    member = brand.member(external_userid="wm_cli_1")["member_id"]
    state = tmp_path / "demo.json"
    state.write_text(json.dumps({"api_url": stack.api_url, "wechat_url": stack.wechat_url, "brand": brand.body,
                                 "admin_key": brand.admin_key}))
    done = siyu_dev("guide", "--brand", brand.brand_id, "--guide", "li", "--tag", "vip", "--task",
                    env={"SIYU_LOCAL_STATE": str(state)}, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "login (WeCom OAuth code) → 200" in out
    assert "Li (g1) at Shenzhen 1" in out
    assert "  contacts           1" in out and "  new_members        1" in out
    assert f"  {member}  joined" in out
    assert f"tag {member} +vip → 200" in out and "vip" in brand.member(external_userid="wm_cli_1")["tags"]
    assert "head office creates a task → 201" in out
    assert "the guide's open tasks → 200" in out and '"state": "created"' in out, out
