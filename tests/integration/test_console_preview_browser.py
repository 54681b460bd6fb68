"""The dashboard's campaign form shows the audience size preview live, and the 导购 tab lists the brand's
guide tasks from the API (not only those made in this browser tab). Debian's chromium, as
test_console_browser.py drives it."""
from __future__ import annotations

from tests.integration.campaign_fixtures import add_members
from tests.integration.test_console_browser import browser, browser_session, chromium, dashboard_sign_in, shot  # noqa: F401
from tests.integration.test_guide_tasks import new_task


def test_the_campaign_form_previews_the_audience_as_it_is_typed(stack, make_brand, browser):  # noqa: F811
    brand = make_brand("dprv")
    add_members(brand, 5, prefix="o_pv", tags=("vip",), store_id="sz")
    add_members(brand, 3, prefix="o_pn", tags=("new",), store_id="sh")
    task = new_task(brand, f"preview tab {brand.brand_id}", guide_ids=["g1"])
    b = browser
    dashboard_sign_in(b, stack, brand)
    b.find('[data-tab="campaigns"]').click()
    b.wait_until("return document.querySelector('#cmp-preview')?.dataset.eligible === '8'")
    assert b.find("#cmp-preview").text == "预计触达 8 人"
    b.find("#cmp-tags").type("vip")
    b.wait_until("return document.querySelector('#cmp-preview')?.dataset.eligible === '5'")
    assert b.find("#cmp-preview").text == "预计触达 5 人"
    b.find("#cmp-stores").type("sh")
    b.wait_until("return document.querySelector('#cmp-preview')?.dataset.eligible === '0'")
    assert b.find("#cmp-preview").text == "预计触达 0 人"
    api = brand.admin("POST", "/campaigns/preview", {"audience": {"tags_any": ["vip"], "store_ids": ["sh"]}}).json()
    assert api == {"members_examined": 8, "eligible": 0, "exact": True}
    shot(b, "dashboard_campaign_preview")

    b.find('[data-tab="guides"]').click()
    row = b.wait(f'#gt-list tr[data-task-id="{task["task_id"]}"]')
    assert task["name"] in row.text
