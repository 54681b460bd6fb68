"""The console on issue 11's routes, in Debian's chromium: the guide workbench (导购工作台) signed in with
a WeCom code, and the dashboard's guides tab (leaderboard, head-office tasks) and channel codes.

Each number on screen is compared with what the API answers for the same query (data-value keeps the
raw value); screenshots go to build/screenshots/ (docs/guide.png for the README only under `make screenshots`)."""
from __future__ import annotations

import json
import struct
import time
from urllib.parse import quote

from chalicelib.services import guide_tasks
from tests.integration.test_console_browser import (browser, browser_session, chromium,  # noqa: F401 (fixtures)
                                                   dashboard_sign_in, shot)
from tests.integration.test_guide_tasks import new_task, sim, sim_tasks
from tests.integration.test_guide_workbench import as_guide, guide_session, seed, wecom_code

FIGURES = ("contacts", "new_members", "lost_contacts", "converted_members", "orders", "gmv_cents", "coupons_redeemed",
           "execution_rate")


def shown_members(b) -> list[str]:
    return [r.attr("data-member-id") for r in b.find_all("#m-table tbody tr[data-member-id]")]


def test_a_guide_signs_in_sees_only_their_own_and_tags_a_member(stack, make_brand, browser):
    brand = make_brand("gpage")
    ids = seed(brand)                           # li (g1, sz): a, b (removed), x; wang (g2, sh): c
    task = new_task(brand, f"会员日提醒 {brand.brand_id}", guide_ids=["g1"])
    li = guide_session(brand, "li")             # the API's own answers, to compare with the page
    b = browser
    b.resize(412, 1400)                         # a phone: the page opens inside WeCom
    b.get(stack.api_url + "/console/guide")
    assert b.wait("h1").text == "导购工作台"
    b.find("#si-brand").type(brand.brand_id)
    code = wecom_code(brand, userid="li")
    b.find("#si-code").type(code)
    b.find("#si-go").click()
    b.wait("#figures .kpi")
    assert code not in b.js("return location.href")
    stored = json.loads(b.js("return sessionStorage.getItem('siyu.guide')"))
    assert (stored["guide"], stored["store"]) == ("g1", "sz")

    # my numbers: exactly the API's for the page's range
    start, end = b.js("return [document.querySelector('#from').value, document.querySelector('#to').value]")
    mine = as_guide(brand, li, "GET", "/me", params={"from": start, "to": end}).json()
    for k in FIGURES:
        assert json.loads(b.find(f'#figures [data-figure="{k}"] .v').attr("data-value")) == mine["figures"][k], k
    assert b.find('#figures [data-figure="new_members"] .v').text == "3"
    assert b.find('#figures [data-figure="gmv_cents"] .v').text == "¥123.00"
    assert "Li" in b.find("#who").text and "Shenzhen 1" in b.find("#who").text

    # my members: the API's list, in its order; never wang's member c
    api_members = [m["member_id"] for m in as_guide(brand, li, "GET", "/me/members").json()["members"]]
    assert shown_members(b) == api_members and set(api_members) == {ids["a"], ids["b"], ids["x"]}
    assert ids["c"] not in shown_members(b)

    # my open task
    row = b.wait(f'#tasks tr[data-task-id="{task["task_id"]}"]')
    assert "会员日提醒" in row.text and "待执行" in row.text

    # tag member a from the page: stored, and the row shows the stored tags
    b.find(f'#m-table tr[data-tag-for="{ids["a"]}"] .tag-input').type("高意向")
    b.find(f'#m-table tr[data-tag-for="{ids["a"]}"] .tag-go').click()
    assert "已加标签" in b.wait("#msg .msg.ok").text
    stored_tags = brand.member(external_userid="wm_a")["tags"]
    assert "高意向" in stored_tags
    b.wait_until(f"return JSON.parse(document.querySelector('#m-table tr[data-member-id=\"{ids['a']}\"] .tags')"
                 ".dataset.tags).includes('高意向')")
    assert json.loads(b.find(f'#m-table tr[data-member-id="{ids["a"]}"] .tags').attr("data-tags")) == sorted(stored_tags)
    shot(b, "guide", docs=True)

    # English on request
    b.find("#lang").click()
    assert b.wait("h1").text == "Guide workbench"
    b.find("#lang").click()

    # WeCom's OAuth redirect brings wang's code in the address: the page trades it, drops it, and shows
    # wang's numbers and member, none of li's
    wang_code = wecom_code(brand, userid="wang")
    b.get(f"{stack.api_url}/console/guide?code={quote(wang_code)}&state={brand.brand_id}")
    b.wait_until("return document.querySelector('#who').textContent.includes('Wang')")
    b.wait("#m-table tbody tr[data-member-id]")
    assert wang_code not in b.js("return location.href")
    assert shown_members(b) == [ids["c"]]
    wang = as_guide(brand, guide_session(brand, "wang"), "GET", "/me").json()["figures"]
    assert json.loads(b.find('#figures [data-figure="new_members"] .v').attr("data-value")) == wang["new_members"] == 1
    assert b.find_all(f'#tasks tr[data-task-id="{task["task_id"]}"]') == []        # li's task is not wang's

    # a WeCom user who is no guide is refused in Chinese
    b.js("sessionStorage.clear()")
    b.get(stack.api_url + "/console/guide")
    b.wait("#si-brand").type(brand.brand_id)
    b.find("#si-code").type(wecom_code(brand, userid="not_staff"))
    b.find("#si-go").click()
    assert "不是本品牌导购" in b.wait("#si-msg .msg.error").text


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


LEADERBOARD = """return [...document.querySelectorAll('#lb-table tbody tr')].map(r => [
    r.dataset.guideId, Number(r.dataset.rank),
    Object.fromEntries([...r.querySelectorAll('td[data-field]')].map(c => [c.dataset.field, JSON.parse(c.dataset.value)]))])"""


def settled(b, script: str, ok, timeout: float = 10.0):
    """What `script` reads once it satisfies `ok` (the page may still be rendering a refresh), else
    its last reading, for the caller's assertion to show."""
    deadline = time.monotonic() + timeout
    while True:
        seen = b.js(script)
        if ok(seen) or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def test_the_guides_tab_shows_the_leaderboard_and_a_task_reaches_its_execution_rate(stack, make_brand, browser):
    brand = make_brand("gdash")
    seed(brand)
    r = brand.admin("POST", "/guides", {"guide_id": "g3", "store_id": "sh", "name": "Zhao", "wecom_user_id": "zhao"})
    assert r.status_code == 201, r.text
    b = browser
    dashboard_sign_in(b, stack, brand)
    b.find('[data-tab="guides"]').click()
    b.wait("#lb-table")
    for metric in ("new_members", "converted_members", "gmv_cents", "execution_rate"):
        b.js(f"const s = document.querySelector('#lb-metric'); s.value = '{metric}'; s.dispatchEvent(new Event('change'))")
        b.wait_until(f"return document.querySelector('#lb-table')?.dataset.metric === '{metric}'")
        start, end = b.js("return [document.querySelector('#lb-from').value, document.querySelector('#lb-to').value]")
        board = brand.admin("GET", "/guides/leaderboard", params={"metric": metric, "from": start, "to": end}).json()
        # the table as one snapshot, read in one script: a re-render between element reads would
        # leave the test holding stale elements
        table = settled(b, LEADERBOARD, lambda t: [(r[0], r[1]) for r in t] == [
            (x["guide_id"], x["rank"]) for x in board["rows"]])
        assert [(r[0], r[1]) for r in table] == [(x["guide_id"], x["rank"]) for x in board["rows"]], metric
        for (_, _, shown), x in zip(table, board["rows"]):
            assert shown == {k: x[k] for k in shown} and len(shown) == 7, (metric, shown, x)
    assert [r["guide_id"] for r in brand.admin("GET", "/guides/leaderboard").json()["rows"]][:1] == ["g1"]
    b.js("const s = document.querySelector('#lb-metric'); s.value = 'new_members'; s.dispatchEvent(new Event('change'))")
    b.wait_until("return document.querySelector('#lb-table')?.dataset.metric === 'new_members'")
    assert b.find('#lb-table tr[data-guide-id="g1"] td[data-field="value"]').text == "3"

    # a head-office task from the page, to both stores' guides
    text = f"周末上新 {brand.brand_id}"
    b.find("#gt-name").type("周末上新提醒")
    b.find("#gt-stores").type("sz, sh")
    b.find("#gt-text").type(text)
    b.find("#gt-go").click()
    task_id = b.wait("#gt-detail h3[data-task-id]").attr("data-task-id")
    made = brand.admin("GET", f"/guide-tasks/{task_id}").json()
    assert (made["name"], sorted(made["store_ids"]), made["message"]["text"], made["guides_assigned"]) == (
        "周末上新提醒", ["sh", "sz"], text, 3)
    assert b.find("#gt-state").attr("data-state") == "scheduled"
    assert b.find(f'#gt-list tr[data-task-id="{task_id}"]')

    stack.scheduler.fire(f"{brand.brand_id}.{task_id}")        # what EventBridge Scheduler does at send_at
    stack.pump.idle()
    created = {t["sender"]: t for t in sim_tasks(stack, text)}
    assert set(created) == {"li", "wang"}                        # zhao has no contacts: nothing to send
    sim(stack, "POST", "__sim/wecom/confirm", {"userid": "li", "msgid": created["li"]["msgid"]})
    guide_tasks.poll(brand.brand_id, task_id)
    view = brand.admin("GET", f"/guide-tasks/{task_id}").json()
    assert view["guides_executed"] >= 1 and view["execution_rate"] is not None
    b.wait_until(f"return JSON.parse(document.querySelector('[data-stat=\"execution_rate\"] .v')?.dataset.value ?? 'null') "
                 f"=== {view['execution_rate']}", 20)
    for k in ("guides_assigned", "guides_executed", "contacts_targeted", "contacts_sent"):
        assert json.loads(b.find(f'[data-stat="{k}"] .v').attr("data-value")) == view[k], k
    assert b.find('[data-stat="execution_rate"] .v').text == f"{view['execution_rate'] * 100:.2f}%"
    per = {g["guide_id"]: g["executed"] for g in brand.admin("GET", f"/guide-tasks/{task_id}/guides").json()["guides"]}
    executed = settled(b, "return [...document.querySelectorAll('#gt-guides tbody tr')]"
                          ".map(r => [r.dataset.guideId, r.dataset.executed === 'true'])",
                       lambda rows: dict(rows) == per)
    assert dict(executed) == per
    assert per["g1"] is True and per["g2"] is False
    b.js("document.querySelector('#gt-detail').scrollIntoView()")
    shot(b, "dashboard-guides")


def test_the_channels_tab_shows_codes_and_the_store_sheet_without_the_key_in_a_url(stack, make_brand, browser):
    brand = make_brand("gcode")
    b = browser
    dashboard_sign_in(b, stack, brand)
    b.find('[data-tab="channels"]').click()
    b.wait('#ch-list tr[data-scene="S1"] button[data-action="code"]').click()
    img = b.wait('#ch-list tr[data-scene="S1"] td.code img')
    assert img.attr("src").startswith("blob:") and img.attr("data-app") == "oa"
    b.wait_until("const i = document.querySelector('#ch-list tr[data-scene=\"S1\"] td.code img'); "
                 "return i.complete && i.naturalWidth > 0")                 # decoded: the CSP lets blob: images in
    r = brand.admin("GET", "/channels/S1/code?app=oa", headers={"Accept": "image/png"})
    assert r.status_code == 200 and int(img.attr("data-bytes")) == len(r.content)
    assert b.js("const i = document.querySelector('#ch-list tr[data-scene=\"S1\"] td.code img'); "
                "return [i.naturalWidth, i.naturalHeight]") == list(png_size(r.content))

    # the store's PDF sheet: fetched with the key in a header, opened from a blob: URL
    b.js("window.open = u => { window.__opened = u; return null; }")
    b.find('#ch-stores tr[data-store-id="sz"] button[data-action="pdf"]').click()
    link = b.wait('#ch-stores tr[data-store-id="sz"] td.pdf a')
    assert link.attr("href").startswith("blob:") and link.attr("data-type") == "application/pdf"
    assert int(link.attr("data-bytes")) > 1000
    assert b.js("return window.__opened") == link.attr("href")

    # a WeCom code of a channel without a guide: the API's refusal, shown; the key is in no URL
    b.js("const s = document.querySelector('#ch-app'); s.value = 'wecom'")
    b.find('#ch-list tr[data-scene="S2"] button[data-action="code"]').click()
    assert "没有绑定企业微信的导购" in b.wait("#msg .msg.error").text
    urls = b.js("return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])")
    assert urls and not any(brand.admin_key in u for u in urls)
    shot(b, "dashboard-channels")
