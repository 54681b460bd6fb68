/* 导购工作台: a shopping guide's own numbers, members and open tasks (issue 11's /guide/{brand}/… routes).
   Signed in with a WeCom login code: WeCom's OAuth redirect brings it as ?code=…&state=<brand>; the
   page trades it at once for a guide session (sessionStorage) and removes it from the address. */
"use strict";
(function () {
  const { t, call, yuan, pct, num, when, el, ApiError } = siyu;
  siyu.add({
    "g.title": ["导购工作台", "Guide workbench"], "g.code": ["企业微信登录码", "WeCom login code"],
    "g.code_hint": ["从企业微信工作台打开本页会自动登录", "Opened from WeCom, this page signs in by itself"],
    "g.from": ["开始日期", "From"], "g.to": ["结束日期", "To"], "g.show": ["查询", "Show"], "g.more": ["更多", "More"],
    "g.tasks": ["待执行任务", "Open tasks"], "g.members": ["我的会员", "My members"], "g.tag": ["按标签筛选", "Filter by tag"],
    "g.none": ["暂无", "None"], "g.executed": ["已执行", "Executed"], "g.pending": ["待执行", "Pending"], "g.due": ["截止", "Due"],
    "f.contacts": ["客户数", "Contacts"], "f.new_members": ["拉新", "New members"], "f.lost_contacts": ["流失", "Lost"],
    "f.converted_members": ["转化", "Converted"], "f.orders": ["订单", "Orders"], "f.gmv_cents": ["成交额", "GMV"],
    "f.coupons_redeemed": ["核销", "Redeemed"], "f.execution_rate": ["任务执行率", "Task execution"],
    "g.add_tag": ["加标签", "Add tag"], "g.tagged": ["已加标签", "Tagged"], "g.orders": ["订单", "Orders"], "g.gmv": ["消费", "Spent"],
    "g.coupons": ["优惠券", "Coupons"], "g.last_touch": ["最近互动", "Last touch"],
    "err.invalid_session": ["登录已失效，请重新登录", "Session expired: sign in again"],
    "err.invalid_code": ["登录码无效", "Invalid login code"], "err.code_used": ["登录码已使用", "Login code already used"],
    "err.code_expired": ["登录码已过期", "Login code expired"], "err.not_a_guide": ["该企业微信账号不是本品牌导购", "This WeCom account is not one of the brand's guides"],
    "err.unknown_member": ["不是您的会员", "Not one of your members"], "err.invalid_tag": ["标签为1-40个字符", "A tag is 1-40 characters"],
  });
  const SESSION = "siyu.guide";
  const $ = id => document.getElementById(id);
  let session = JSON.parse(sessionStorage.getItem(SESSION) || "null"), cursor = null;
  const me = (path, q, method, body) => call(method || "GET", `/guide/${encodeURIComponent(session.brand)}/me${path}${q ? "?" + q : ""}`,
                                             { key: session.token, body });
  const fail = e => {
    if (e.code === "invalid_session" || e.status === 401) { sessionStorage.removeItem(SESSION); }
    $("msg").replaceChildren(el("div", { class: "msg error", "data-code": e.code }, e instanceof ApiError ? e.text : String(e)));
  };

  async function login(brand, code) {
    try {
      const s = await call("POST", `/guide/${encodeURIComponent(brand)}/login`, { body: { code } });
      session = { brand, token: s.session, guide: s.guide_id, store: s.store_id };
      sessionStorage.setItem(SESSION, JSON.stringify(session));
      enter();
    } catch (e) { $("si-msg").replaceChildren(el("div", { class: "msg error" }, e.text || String(e))); }
  }

  function enter() {
    $("signin").classList.add("hidden"); $("work").classList.remove("hidden"); $("signout").classList.remove("hidden");
    $("who").textContent = `${session.brand} / ${session.guide || ""}`;
    load();
  }

  const FIGURES = ["contacts", "new_members", "lost_contacts", "converted_members", "orders", "gmv_cents", "coupons_redeemed", "execution_rate"];
  async function load() {
    const q = new URLSearchParams();
    if ($("from").value) q.set("from", $("from").value);
    if ($("to").value) q.set("to", $("to").value);
    try {
      const [mine, tasks] = await Promise.all([me("", q.toString()), me("/tasks")]);
      $("who").textContent = `${mine.guide.name} · ${mine.store.name || mine.store.store_id}`;
      $("from").value = mine.from; $("to").value = mine.to;
      $("figures").replaceChildren(...FIGURES.map(k => el("div", { class: "kpi", "data-figure": k }, el("div", { class: "l" }, t("f." + k)),
        el("div", { class: "v", "data-value": JSON.stringify(mine.figures[k]) }, k.endsWith("_cents") ? yuan(mine.figures[k]) : k.endsWith("_rate") ? pct(mine.figures[k]) : num(mine.figures[k])))));
      $("tasks").replaceChildren(tasks.tasks.length ? el("table", {}, el("tbody", {}, ...tasks.tasks.map(x => el("tr", { "data-task-id": x.task_id },
        el("td", {}, x.name, el("div", { class: "muted" }, (x.message || {}).text || "")), el("td", { class: "muted" }, `${t("g.due")} ${when(x.due_at)}`),
        el("td", {}, el("span", { class: "pill" }, x.mine && x.mine.executed ? t("g.executed") : t("g.pending")))))))
        : el("p", { class: "muted" }, t("g.none")));
      members(false);
    } catch (e) { fail(e); }
  }

  async function members(more) {
    const q = new URLSearchParams();
    if ($("tag").value.trim()) q.set("tag", $("tag").value.trim());
    if (more && cursor) q.set("cursor", cursor);
    try {
      const page = await me("/members", q.toString());
      cursor = page.cursor;
      const rows = page.members.map(m => el("tr", { "data-member-id": m.member_id },
        el("td", { style: "word-break:break-all" }, m.member_id, el("div", { class: "muted tags", "data-tags": JSON.stringify(m.tags || []) }, (m.tags || []).join(", "))),
        el("td", { class: "muted" }, when((m.last_touch || {}).at)), el("td", { class: "n", "data-field": "orders" }, num(m.orders)),
        el("td", { class: "n", "data-field": "gmv_cents", "data-value": JSON.stringify(m.gmv_cents) }, yuan(m.gmv_cents)),
        el("td", { class: "n", "data-field": "coupons" }, num((m.coupons || []).length))));
      // under each member, its own line to add a tag (a phone has no room for it beside the numbers)
      const editors = page.members.map(m => el("tr", { "data-tag-for": m.member_id }, el("td", { colspan: 5, style: "border-top:0" },
        el("div", { class: "row", style: "flex-wrap:nowrap" }, el("input", { class: "tag-input", placeholder: t("g.add_tag"), "aria-label": t("g.add_tag") }),
          el("button", { type: "button", class: "tag-go", onclick: () => addTag(m.member_id) }, t("g.add_tag"))))));
      const pairs = rows.flatMap((row, i) => [row, editors[i]]);
      const head = el("thead", {}, el("tr", {}, el("th", {}, "ID"), el("th", {}, t("g.last_touch")),
        ...[t("g.orders"), t("g.gmv"), t("g.coupons")].map(h => el("th", { class: "n" }, h))));
      if (more && $("m-table")) $("m-table").tBodies[0].append(...pairs);
      else $("members").replaceChildren(page.members.length ? el("table", { id: "m-table" }, head, el("tbody", {}, ...pairs))
                                                          : el("p", { class: "muted" }, t("g.none")));
      $("more").classList.toggle("hidden", !cursor);
    } catch (e) { fail(e); }
  }

  // one tag on one of my members: the API answers the member's tags as stored, which the row then shows
  async function addTag(memberId) {
    const row = document.querySelector(`#m-table tr[data-member-id="${CSS.escape(memberId)}"]`);
    const editor = document.querySelector(`#m-table tr[data-tag-for="${CSS.escape(memberId)}"]`);
    const input = editor.querySelector(".tag-input"), tag = input.value.trim();
    if (!tag) return;
    const button = editor.querySelector(".tag-go");
    button.disabled = true;
    try {
      const done = await me(`/members/${encodeURIComponent(memberId)}/tags`, "", "POST", { add: [tag] });
      const box = row.querySelector(".tags");
      box.textContent = done.tags.join(", "); box.dataset.tags = JSON.stringify(done.tags);
      input.value = "";
      $("msg").replaceChildren(el("div", { class: "msg ok", role: "status" }, `${t("g.tagged")}: ${tag}`));
    } catch (e) { fail(e); } finally { button.disabled = false; }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.addEventListener("langchange", () => { if (session && !$("work").classList.contains("hidden")) load(); });
    const params = new URLSearchParams(location.search);
    if (params.get("code")) {                          // WeCom's OAuth redirect: trade the code, drop it from the address
      history.replaceState(null, "", location.pathname);
      login(params.get("state") || params.get("brand") || "", params.get("code"));
    }
    $("signin").addEventListener("submit", ev => { ev.preventDefault(); login($("si-brand").value.trim(), $("si-code").value.trim()); });
    $("signout").addEventListener("click", () => { sessionStorage.removeItem(SESSION); location.reload(); });
    $("go").addEventListener("click", load);
    $("tag-go").addEventListener("click", () => members(false));
    $("more").addEventListener("click", () => members(true));
    if (session && !params.get("code")) enter();
  });
})();
