/* 运营后台: the scoreboard, coupon templates, campaigns, channels and members of one brand.
   Every number shown is the API's, as it returned it: counts as they are, cents as ¥ with two
   decimals, rates ×100 with two decimals; each cell keeps the raw value in data-value. */
"use strict";
(function () {
  const { t, call, yuan, pct, num, when, el, ApiError } = siyu;
  siyu.add({
    "dash.title": ["运营后台", "Dashboard"], "dash.admin_key": ["品牌管理密钥", "Brand admin key"],
    "tab.score": ["数据看板", "Scoreboard"], "tab.coupons": ["优惠券", "Coupons"], "tab.campaigns": ["营销活动", "Campaigns"],
    "tab.channels": ["渠道码", "Channels"], "tab.members": ["会员", "Members"],
    "dash.from": ["开始日期", "From"], "dash.to": ["结束日期", "To"], "dash.show": ["查询", "Show"], "dash.create": ["创建", "Create"],
    "dash.by_day": ["按日趋势", "By day"], "dash.by_store": ["按门店", "By store"], "dash.by_guide": ["按导购", "By guide"],
    "dash.by_channel": ["按渠道", "By channel"], "dash.none": ["暂无数据", "No data"], "dash.key": ["维度", "Key"],
    "m.new_members": ["拉新", "New members"], "m.conversion_rate": ["转化率", "Conversion"], "m.repeat_rate": ["复购率", "Repeat rate"],
    "m.member_share": ["私域占比", "Private-domain share"], "m.redemption_rate": ["核销率", "Redemption rate"],
    "m.converted_members": ["转化会员", "Converted"], "m.orders": ["订单", "Orders"], "m.gmv_cents": ["成交额", "GMV"],
    "m.member_gmv_cents": ["会员成交额", "Member GMV"], "m.coupons_issued": ["发券", "Issued"], "m.coupons_redeemed": ["核销", "Redeemed"],
    "m.discount_cents": ["优惠金额", "Discounts"],
    "tpl.create": ["新建优惠券", "New coupon template"], "tpl.name": ["名称", "Name"], "tpl.kind": ["类型", "Kind"],
    "tpl.value": ["面额（分）/折扣（%）", "Value (cents / %)"], "tpl.min_spend": ["最低消费（分）", "Min. spend (cents)"],
    "tpl.valid_days": ["领取后有效天数", "Valid days after claim"], "tpl.stock": ["库存", "Stock"], "tpl.per_member": ["每人限领", "Per member"],
    "tpl.list": ["优惠券列表（实时）", "Coupon templates (live)"], "tpl.issued": ["已发", "Issued"], "tpl.redeemed": ["已核销", "Redeemed"],
    "tpl.remaining": ["剩余", "Remaining"], "tpl.created": ["已创建", "Created"],
    "kind.cash_off": ["满减券", "Cash off"], "kind.percent_off": ["折扣券", "Percent off"], "kind.gift": ["礼品券", "Gift"],
    "cmp.create": ["新建活动", "New campaign"], "cmp.name": ["活动名称", "Name"], "cmp.tags_any": ["标签（任一，逗号分隔）", "Tags (any, comma-separated)"],
    "cmp.store_ids": ["门店（逗号分隔）", "Stores (comma-separated)"], "cmp.medium": ["发送方式", "Medium"],
    "cmp.template_id": ["消息模板 ID", "Message template id"], "cmp.page": ["跳转页面", "Page"], "cmp.coupon": ["附带优惠券模板（可选）", "Coupon template (optional)"],
    "cmp.data": ["模板数据（JSON）", "Template data (JSON)"], "cmp.at": ["发送时间", "Send at"], "cmp.list": ["活动列表", "Campaigns"],
    "cmp.state": ["状态", "State"], "cmp.open": ["查看", "Open"], "cmp.pause": ["暂停", "Pause"], "cmp.resume": ["恢复", "Resume"],
    "cmp.cancel": ["取消", "Cancel"], "cmp.deliveries": ["发送明细", "Deliveries"], "cmp.bad_json": ["模板数据不是有效的 JSON", "Template data is not valid JSON"],
    "s.targeted": ["目标人数", "Targeted"], "s.sent": ["已发送", "Sent"], "s.failed": ["失败", "Failed"], "s.skipped": ["跳过", "Skipped"],
    "state.scheduled": ["已排期", "Scheduled"], "state.running": ["发送中", "Running"], "state.paused": ["已暂停", "Paused"],
    "state.completed": ["已完成", "Completed"], "state.cancelled": ["已取消", "Cancelled"],
    "ch.scene": ["场景值", "Scene"], "ch.store": ["门店", "Store"], "ch.guide": ["导购", "Guide"], "ch.source": ["来源", "Source"], "ch.tags": ["标签", "Tags"],
    "mem.store": ["首次门店", "First store"], "mem.guide": ["首次导购", "First guide"], "mem.channel": ["首次渠道", "First channel"],
    "mem.tag": ["标签", "Tag"], "mem.more": ["更多", "More"], "mem.joined": ["入会时间", "Joined"], "mem.orders": ["订单", "Orders"],
    "mem.gmv": ["消费", "Spent"], "mem.touches": ["触达次数", "Touches"], "mem.coupons": ["优惠券", "Coupons"],
    "tab.guides": ["导购", "Guides"], "ch.app": ["二维码类型", "Code for"], "app.oa": ["公众号关注码", "Official account"],
    "app.mp": ["小程序码", "Mini-program"], "app.wecom": ["企业微信联系我", "WeCom contact me"], "ch.code": ["二维码", "Code"],
    "ch.show_code": ["显示二维码", "Show code"], "ch.sheets": ["门店物料（PDF）", "Store sheets (PDF)"], "ch.pdf": ["生成门店码 PDF", "Make the PDF"],
    "ch.pdf_ready": ["打开 PDF", "Open the PDF"],
    "lb.metric": ["排行指标", "Rank by"], "lb.execution_rate": ["任务执行率", "Task execution"], "lb.title": ["导购排行榜", "Guide leaderboard"],
    "lb.rank": ["排名", "Rank"], "lb.guide": ["导购", "Guide"], "lb.value": ["指标值", "Value"], "lb.contacts": ["客户数", "Contacts"],
    "gt.create": ["新建总部任务", "New head-office task"], "gt.name": ["任务名称", "Name"], "gt.guide_ids": ["导购（逗号分隔）", "Guides (comma-separated)"],
    "gt.text": ["群发内容", "Message"], "gt.send_at": ["下发时间", "Send at"], "gt.due_at": ["截止时间", "Due"],
    "gt.list": ["总部任务（最新在前）", "Head-office tasks (newest first)"], "gt.more": ["更多", "More"],
    "cmp.preview": ["预计触达 {n} 人", "Reaches {n} members"],
    "cmp.preview_est": ["预计触达约 {n} 人（95% 区间 {low}–{high}）", "Reaches about {n} members (95% interval {low}–{high})"], "gt.task_id": ["任务 ID", "Task id"],
    "gt.guides_assigned": ["分配导购", "Guides assigned"], "gt.guides_executed": ["已执行导购", "Guides executed"],
    "gt.execution_rate": ["执行率", "Execution rate"], "gt.contacts_targeted": ["目标客户", "Customers targeted"],
    "gt.contacts_sent": ["已送达", "Sent"], "gt.executed": ["已执行", "Executed"], "gt.pending": ["未执行", "Not yet"],
    "b.sent": ["已送达", "Sent"], "b.capped": ["超出每日上限", "Over the daily cap"], "b.not_contact": ["已非好友", "No longer a contact"],
    "b.unconfirmed": ["导购未确认", "Not confirmed"],
    "err.no_guides": ["这些门店没有绑定企业微信的导购", "No guide with a WeCom account in these stores"],
    "err.unknown_guide": ["导购不存在", "No such guide"], "err.unknown_guide_task": ["任务不存在", "No such task"],
    "err.guide_without_wecom": ["导购未绑定企业微信", "Guide has no WeCom account"],
    "err.app_not_configured": ["未配置该应用", "That app is not configured"], "err.no_channel_codes": ["该门店没有渠道码", "This store has no channel codes"],
    "err.code_quota_exceeded": ["二维码额度已用完", "Code quota used up"], "err.code_rate_limited": ["生成过快，请稍后再试", "Too many codes this minute; try again"],
    "err.channel_has_no_wecom_guide": ["该渠道没有绑定企业微信的导购，无法生成联系我二维码", "This channel has no guide with WeCom: no contact-me code"],
    "err.scene_too_long_for_mp": ["场景值过长，无法生成小程序码", "Scene too long for a mini-program code"],
  });

  const SESSION = "siyu.dashboard";
  const $ = id => document.getElementById(id);
  let session = JSON.parse(sessionStorage.getItem(SESSION) || "null");
  const admin = (method, path, body) => call(method, `/admin/${encodeURIComponent(session.brand)}${path}`, { key: session.key, body });
  const show = (kind, text) => $("msg").replaceChildren(text ? el("div", { class: "msg " + kind, role: "status" }, text) : "");
  const fail = e => show("error", e instanceof ApiError ? `${e.text} (${e.code})` : String(e));
  const timers = {};
  function every(name, ms, fn) { clearInterval(timers[name]); timers[name] = setInterval(fn, ms); }

  // ---- sign in --------------------------------------------------------------------------------
  async function signIn(ev) {
    ev.preventDefault();
    session = { brand: $("si-brand").value.trim(), key: $("si-key").value.trim() };
    try { session.timezone = (await admin("GET", "")).timezone || "Asia/Shanghai"; } catch (e) {
      session = null;
      $("si-msg").replaceChildren(el("div", { class: "msg error" }, e.text || String(e)));
      return;
    }
    sessionStorage.setItem(SESSION, JSON.stringify(session));
    $("si-key").value = "";
    enter();
  }
  function enter() {
    $("signin").classList.add("hidden"); $("work").classList.remove("hidden"); $("signout").classList.remove("hidden");
    $("who").textContent = session.brand;
    tab(location.hash.slice(1) || "score");
  }

  function tab(name) {
    document.querySelectorAll("[data-pane]").forEach(p => p.classList.toggle("hidden", p.dataset.pane !== name));
    document.querySelectorAll("[data-tab]").forEach(b => b.classList.toggle("active", b.dataset.tab === name));
    Object.keys(timers).forEach(k => clearInterval(timers[k]));
    show("", "");
    ({ score: loadScore, coupons: loadTemplates, campaigns: loadCampaigns, channels: loadChannels, members: () => loadMembers(false),
       guides: loadGuides }[name] || loadScore)();
  }

  // ---- scoreboard -----------------------------------------------------------------------------
  const KPIS = ["new_members", "conversion_rate", "repeat_rate", "member_share", "redemption_rate"];
  const COLS = ["new_members", "converted_members", "conversion_rate", "repeat_rate", "orders", "gmv_cents", "member_gmv_cents",
                "member_share", "coupons_issued", "coupons_redeemed", "redemption_rate", "discount_cents"];
  const fmt = (metric, v) => metric.endsWith("_rate") || metric === "member_share" ? pct(v) : metric.endsWith("_cents") ? yuan(v) : num(v);
  // a day in the brand's time zone (the scoreboard's days are the brand's)
  const iso = d => new Intl.DateTimeFormat("en-CA", { timeZone: session.timezone || "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit" }).format(d);

  async function loadScore() {
    if (!$("to").value) { const now = new Date(); $("to").value = iso(now); $("from").value = iso(new Date(now - 6 * 864e5)); }
    const range = `from=${$("from").value}&to=${$("to").value}`;
    try {
      const [day, store, guide, channel] = await Promise.all(["day", "store", "guide", "channel"].map(by => admin("GET", `/stats?${range}&by=${by}`)));
      $("kpis").replaceChildren(...KPIS.map(m => el("div", { class: "kpi", "data-metric": m },
        el("div", { class: "l" }, t("m." + m)), el("div", { class: "v", "data-value": JSON.stringify(day.totals[m]) }, fmt(m, day.totals[m])))));
      chart(day);
      table($("by-store"), store); table($("by-guide"), guide); table($("by-channel"), channel);
    } catch (e) { fail(e); }
  }

  function table(box, stats) {
    if (!stats.rows.length) return box.replaceChildren(el("p", { class: "muted" }, t("dash.none")));
    const row = (key, values, attrs) => el("tr", attrs, el("td", {}, key === null ? "—" : key),
      ...COLS.map(m => el("td", { class: "n", "data-metric": m, "data-value": JSON.stringify(values[m]) }, fmt(m, values[m]))));
    box.replaceChildren(el("div", { style: "overflow-x:auto" }, el("table", { "data-by": stats.by },
      el("thead", {}, el("tr", {}, el("th", {}, t("dash.key")), ...COLS.map(m => el("th", { class: "n" }, t("m." + m))))),
      el("tbody", {}, ...stats.rows.map(r => row(r.key, r, { "data-key": r.key === null ? "" : r.key }))),
      el("tfoot", {}, row("Σ", stats.totals, { "data-key": "__totals" })))));
  }

  let plot = null;
  function chart(stats) {
    // every day of the range: a day without a row has no counter moved, i.e. 0 of everything
    const byDay = new Map(stats.rows.filter(r => r.key).map(r => [r.key, r]));
    const days = [];
    for (let d = new Date(stats.from + "T00:00:00Z"); iso0(d) <= stats.to; d = new Date(d.getTime() + 864e5)) days.push(iso0(d));
    const series = ["new_members", "orders", "coupons_redeemed"];
    const data = [days.map(d => Date.parse(d + "T00:00:00Z") / 1000), ...series.map(m => days.map(d => (byDay.get(d) || {})[m] || 0))];
    const colors = ["#07c160", "#3370ff", "#f5a623"];
    if (plot) plot.destroy();
    $("chart").replaceChildren();
    plot = new uPlot({ width: Math.max(300, $("chart").clientWidth || 600), height: 220, tzDate: ts => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
                       series: [{}, ...series.map((m, i) => ({ label: t("m." + m), stroke: colors[i], width: 2, points: { show: true } }))],
                       axes: [{ incrs: [86400, 7 * 86400, 28 * 86400], values: (u, ticks) => ticks.map(ts => iso0(new Date(ts * 1e3)).slice(5)) }, { size: 40 }],
                       scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, Math.max(1, hi)] } } }, data, $("chart"));
  }
  const iso0 = d => d.toISOString().slice(0, 10);

  // ---- coupon templates -------------------------------------------------------------------------
  async function createTemplate(ev) {
    ev.preventDefault();
    const int = id => parseInt($(id).value, 10);
    const body = { name: $("tpl-name").value.trim(), kind: $("tpl-kind").value, value: int("tpl-value"),
                   min_spend_cents: int("tpl-min"), valid_days_after_claim: int("tpl-days"), total_stock: int("tpl-stock"),
                   per_member_limit: int("tpl-limit") };
    try {
      const made = await admin("POST", "/coupon-templates", body);
      show("ok", `${t("tpl.created")}: ${made.template_id}`);
      $("msg").firstChild.dataset.templateId = made.template_id;
      loadTemplates();
    } catch (e) { fail(e); }
  }

  async function loadTemplates() {
    try {
      const list = await admin("GET", "/coupon-templates?limit=50");
      // live counts: each template's own GET (issued, redeemed, remaining as the API sums them)
      const live = await Promise.all(list.templates.map(x => admin("GET", `/coupon-templates/${encodeURIComponent(x.template_id)}`)));
      const cols = [["template_id", num], ["name", num], ["kind", k => t("kind." + k)], ["value", num], ["min_spend_cents", yuan],
                    ["issued", num], ["redeemed", num], ["remaining", num]];
      $("tpl-list").replaceChildren(el("table", { id: "tpl-table" },
        el("thead", {}, el("tr", {}, ...["ID", t("tpl.name"), t("tpl.kind"), t("tpl.value"), t("tpl.min_spend"), t("tpl.issued"), t("tpl.redeemed"), t("tpl.remaining")].map(h => el("th", {}, h)))),
        el("tbody", {}, ...live.map(x => el("tr", { "data-template-id": x.template_id },
          ...cols.map(([k, f]) => el("td", { "data-field": k, "data-value": JSON.stringify(x[k] === undefined ? null : x[k]) }, f(x[k]))))))));
      every("templates", 5000, loadTemplatesQuietly);
    } catch (e) { fail(e); }
  }
  const loadTemplatesQuietly = () => { if (!document.hidden) loadTemplates(); };

  // ---- campaigns ------------------------------------------------------------------------------
  const csv = v => v.split(/[,，\s]+/).map(s => s.trim()).filter(Boolean);
  async function createCampaign(ev) {
    ev.preventDefault();
    let data;
    try { data = JSON.parse($("cmp-data").value || "{}"); } catch (e) { return show("error", t("cmp.bad_json")); }
    const audience = formAudience();
    const at = $("cmp-at").value ? new Date($("cmp-at").value) : new Date(Date.now() + 60e3);
    const body = { name: $("cmp-name").value.trim(), audience,
                   message: { medium: $("cmp-medium").value, template_id: $("cmp-template").value.trim(), page: $("cmp-page").value.trim(), data },
                   schedule: { at: at.toISOString() } };
    if ($("cmp-coupon").value.trim()) body.coupon_template_id = $("cmp-coupon").value.trim();
    try {
      const made = await admin("POST", "/campaigns", body);
      loadCampaigns();
      openCampaign(made.campaign_id);
    } catch (e) { fail(e); }
  }

  // the audience size preview, live as the audience fields change (debounced; a stale answer is dropped)
  let previewTimer = null, previewSeq = 0;
  function formAudience() {
    const audience = {};
    if (csv($("cmp-tags").value).length) audience.tags_any = csv($("cmp-tags").value);
    if (csv($("cmp-stores").value).length) audience.store_ids = csv($("cmp-stores").value);
    return audience;
  }
  function schedulePreview() { clearTimeout(previewTimer); previewTimer = setTimeout(previewAudience, 400); }
  async function previewAudience() {
    const seq = ++previewSeq, box = $("cmp-preview");
    try {
      const p = await admin("POST", "/campaigns/preview", { audience: formAudience() });
      if (seq !== previewSeq) return;
      box.dataset.eligible = p.eligible; box.dataset.exact = p.exact;
      box.textContent = p.exact ? t("cmp.preview").replace("{n}", p.eligible)
        : t("cmp.preview_est").replace("{n}", p.eligible).replace("{low}", p.estimate.low).replace("{high}", p.estimate.high);
    } catch (e) { if (seq === previewSeq) { box.textContent = ""; fail(e); } }
  }

  async function loadCampaigns() {
    if (!$("cmp-preview").dataset.wired) {
      $("cmp-preview").dataset.wired = "1";
      ["cmp-tags", "cmp-stores"].forEach(id => $(id).addEventListener("input", schedulePreview));
      previewAudience();
    }
    try {
      const list = await admin("GET", "/campaigns");
      $("cmp-list").replaceChildren(el("table", {}, el("tbody", {}, ...list.campaigns.map(c => el("tr", { "data-campaign-id": c.campaign_id, "data-state": c.state },
        el("td", {}, c.name), el("td", {}, el("span", { class: "pill" }, t("state." + c.state))), el("td", { class: "muted" }, when(c.created_at)),
        el("td", {}, el("button", { type: "button", onclick: () => openCampaign(c.campaign_id) }, t("cmp.open"))))))));
      if (!$("cmp-at").value) {
        const soon = new Date(Date.now() + 120e3), p = n => String(n).padStart(2, "0");
        $("cmp-at").value = `${soon.getFullYear()}-${p(soon.getMonth() + 1)}-${p(soon.getDate())}T${p(soon.getHours())}:${p(soon.getMinutes())}:${p(soon.getSeconds())}`;
      }
    } catch (e) { fail(e); }
  }

  async function openCampaign(id) {
    const box = $("cmp-detail");
    box.classList.remove("hidden");
    box.dataset.campaign = id;
    const refresh = async () => {
      try {
        const [c, d] = await Promise.all([admin("GET", `/campaigns/${encodeURIComponent(id)}`),
                                          admin("GET", `/campaigns/${encodeURIComponent(id)}/deliveries?limit=50`)]);
        if (box.dataset.campaign !== id) return;      // another campaign was opened meanwhile: its refresh owns the box
        const s = c.stats || {}, skipped = Object.values(s.skipped || {}).reduce((a, b) => a + b, 0);
        const stat = (k, v) => el("div", { class: "kpi", "data-stat": k }, el("div", { class: "l" }, t("s." + k)), el("div", { class: "v", "data-value": v }, num(v)));
        const act = a => el("button", { type: "button", "data-action": a, onclick: async () => {
          try { await admin("POST", `/campaigns/${encodeURIComponent(id)}/${a}`); } catch (e) { fail(e); } refresh(); loadCampaigns(); } }, t("cmp." + a));
        box.replaceChildren(
          el("h3", {}, c.name, " ", el("span", { class: "pill", id: "cmp-state", "data-state": c.state }, t("state." + c.state))),
          el("div", { class: "muted" }, `${c.campaign_id} · ${when((c.schedule || {}).at)}`),
          el("div", { class: "kpis", style: "margin:10px 0" }, stat("targeted", s.targeted), stat("sent", s.sent), stat("failed", s.failed), stat("skipped", skipped)),
          el("div", { class: "row" }, act("pause"), act("resume"), act("cancel")),
          el("h4", {}, t("cmp.deliveries")),
          el("table", { id: "deliveries" }, el("tbody", {}, ...d.deliveries.map(x => el("tr", {}, el("td", {}, x.member_id), el("td", {}, x.state),
            el("td", { class: "muted" }, x.reason || ""), el("td", { class: "muted" }, when(x.at)))))));
        const listed = document.querySelector(`#cmp-list tr[data-campaign-id="${CSS.escape(id)}"]`);
        if (listed && listed.dataset.state !== c.state) loadCampaigns();      // the list follows the state too
        if (["completed", "cancelled"].includes(c.state)) clearInterval(timers.campaign);
      } catch (e) { fail(e); }
    };
    await refresh();
    every("campaign", 2000, refresh);
  }

  // ---- channels and members -------------------------------------------------------------------
  async function loadChannels() {
    try {
      const [{ channels }, { stores }] = await Promise.all([admin("GET", "/channels"), admin("GET", "/stores")]);
      shown.forEach(url => URL.revokeObjectURL(url)); shown.clear();      // the cells holding them are replaced
      $("ch-list").replaceChildren(el("table", {}, el("thead", {}, el("tr", {}, ...["ch.scene", "ch.store", "ch.guide", "ch.source", "ch.tags", "ch.code"].map(k => el("th", {}, t(k))))),
        el("tbody", {}, ...channels.map(c => el("tr", { "data-scene": c.scene }, el("td", {}, c.scene), el("td", {}, c.store_id || "—"),
          el("td", {}, c.guide_id || "—"), el("td", {}, c.source || "—"), el("td", {}, (c.tags || []).join(", ")),
          el("td", { class: "code" }, el("button", { type: "button", "data-action": "code", onclick: ev => showCode(c.scene, ev.target.closest("td")) }, t("ch.show_code"))))))));
      $("ch-stores").replaceChildren(el("table", {}, el("tbody", {}, ...stores.map(x => el("tr", { "data-store-id": x.store_id },
        el("td", {}, x.store_id), el("td", {}, x.name || ""), el("td", { class: "pdf" },
          el("button", { type: "button", "data-action": "pdf", onclick: ev => sheet(x.store_id, ev.target.closest("td")) }, t("ch.pdf"))))))));
    } catch (e) { fail(e); }
  }

  // the channel's printable code for the chosen app, fetched with the key in a header and shown by blob: URL
  const shown = new Map();                    // cell -> blob URL, revoked when replaced
  function keep(cell, url) { if (shown.has(cell)) URL.revokeObjectURL(shown.get(cell)); shown.set(cell, url); }
  async function showCode(scene, cell) {
    const app = $("ch-app").value;
    try {
      const got = await siyu.blob(`/admin/${encodeURIComponent(session.brand)}/channels/${encodeURIComponent(scene)}/code?app=${app}`,
                                  { key: session.key, accept: "image/png" });
      keep(cell, got.url);
      cell.replaceChildren(el("img", { src: got.url, alt: `${scene} ${app}`, width: 160, height: 160, "data-app": app, "data-bytes": got.bytes }));
    } catch (e) { fail(e); }
  }

  async function sheet(storeId, cell) {
    const app = $("ch-app").value;
    cell.querySelector("button").disabled = true;
    try {
      const got = await siyu.blob(`/admin/${encodeURIComponent(session.brand)}/stores/${encodeURIComponent(storeId)}/codes.pdf?app=${app}`,
                                  { key: session.key, accept: "application/pdf" });
      keep(cell, got.url);
      const link = el("a", { href: got.url, target: "_blank", rel: "noopener", download: `${storeId}-${app}-codes.pdf`,
                             "data-type": got.type, "data-bytes": got.bytes }, t("ch.pdf_ready"));
      cell.replaceChildren(link);
      window.open(got.url, "_blank");
    } catch (e) { fail(e); cell.querySelector("button") && (cell.querySelector("button").disabled = false); }
  }

  // ---- guides: the leaderboard and head-office tasks -------------------------------------------
  const LB_COLS = ["new_members", "converted_members", "gmv_cents", "execution_rate", "contacts", "orders"];
  const lbFmt = (m, v) => m.endsWith("_rate") ? pct(v) : m.endsWith("_cents") ? yuan(v) : num(v);
  const lbHead = m => t(m === "execution_rate" ? "lb.execution_rate" : m === "contacts" ? "lb.contacts" : "m." + m);
  function loadGuides() { loadLeaderboard(); listTasks(); prefillTask(); }

  async function loadLeaderboard() {
    const metric = $("lb-metric").value, q = new URLSearchParams({ metric });
    for (const [id, k] of [["lb-store", "store_id"], ["lb-from", "from"], ["lb-to", "to"]]) if ($(id).value.trim()) q.set(k, $(id).value.trim());
    try {
      const board = await admin("GET", "/guides/leaderboard?" + q);
      $("lb-from").value = board.from; $("lb-to").value = board.to;
      const cell = (m, v) => el("td", { class: "n", "data-field": m, "data-value": JSON.stringify(v) }, lbFmt(m, v));
      $("leaderboard").replaceChildren(board.rows.length ? el("div", { style: "overflow-x:auto" }, el("table", { id: "lb-table", "data-metric": board.metric },
        el("thead", {}, el("tr", {}, el("th", {}, t("lb.rank")), el("th", {}, t("lb.guide")), el("th", {}, t("ch.store")), el("th", { class: "n" }, lbHead(board.metric)),
          ...LB_COLS.map(m => el("th", { class: "n" }, lbHead(m))))),
        el("tbody", {}, ...board.rows.map(r => el("tr", { "data-guide-id": r.guide_id, "data-rank": r.rank },
          el("td", {}, num(r.rank)), el("td", {}, `${r.name || ""} (${r.guide_id})`), el("td", {}, r.store_id || "—"),
          el("td", { class: "n", "data-field": "value", "data-value": JSON.stringify(r.value), style: "font-weight:700" }, lbFmt(board.metric, r.value)),
          ...LB_COLS.map(m => cell(m, r[m])))))))
        : el("p", { class: "muted" }, t("dash.none")));
    } catch (e) { fail(e); }
  }

  const instant = v => new Date(v).toISOString().replace(/\.\d{3}Z$/, "Z");
  const localInput = d => { const p = n => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`; };
  function prefillTask() {
    if (!$("gt-send").value) $("gt-send").value = localInput(new Date(Date.now() + 10 * 60e3));
    if (!$("gt-due").value) $("gt-due").value = localInput(new Date(Date.now() + 24 * 3600e3));
  }

  async function createTask(ev) {
    ev.preventDefault();
    const body = { name: $("gt-name").value.trim(), message: { text: $("gt-text").value.trim() },
                   send_at: instant($("gt-send").value), due_at: instant($("gt-due").value) };
    if (csv($("gt-guides").value).length) body.guide_ids = csv($("gt-guides").value);
    else body.store_ids = csv($("gt-stores").value);
    if (csv($("gt-tags").value).length) body.audience = { tags_any: csv($("gt-tags").value) };
    try {
      const made = await admin("POST", "/guide-tasks", body);
      listTasks();
      openTask(made.task_id);
    } catch (e) { fail(e); }
  }

  async function listTasks(cursor) {
    try {
      const page = await admin("GET", "/guide-tasks?limit=20" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
      const rows = page.tasks.map(g => el("tr", { "data-task-id": g.task_id }, el("td", {}, g.name), el("td", {}, t("state." + g.state)),
        el("td", {}, when(g.send_at)), el("td", {}, el("button", { type: "button", onclick: () => openTask(g.task_id) }, t("cmp.open")))));
      const body = cursor && document.querySelector("#gt-list tbody") ? document.querySelector("#gt-list tbody") : null;
      if (body) body.append(...rows);
      else $("gt-list").replaceChildren(el("table", {}, el("tbody", {}, ...rows)));
      document.querySelector("#gt-more")?.remove();
      if (page.next_cursor) $("gt-list").append(el("button", { type: "button", id: "gt-more", onclick: () => listTasks(page.next_cursor) }, t("gt.more")));
    } catch (e) { fail(e); }
  }

  async function openTask(id) {
    const box = $("gt-detail");
    box.classList.remove("hidden");
    const refresh = async () => {
      try {
        const base = `/guide-tasks/${encodeURIComponent(id)}`;
        const [task, per] = await Promise.all([admin("GET", base), admin("GET", base + "/guides")]);
        const stat = (k, v, f) => el("div", { class: "kpi", "data-stat": k }, el("div", { class: "l" }, t("gt." + k)), el("div", { class: "v", "data-value": JSON.stringify(v) }, (f || num)(v)));
        const buckets = task.buckets || {};
        box.replaceChildren(
          el("h3", { "data-task-id": task.task_id }, task.name, " ", el("span", { class: "pill", id: "gt-state", "data-state": task.state }, t("state." + task.state))),
          el("div", { class: "muted" }, `${task.task_id} · ${when(task.send_at)} → ${when(task.due_at)}`),
          el("div", { class: "kpis", style: "margin:10px 0" }, stat("guides_assigned", task.guides_assigned), stat("guides_executed", task.guides_executed),
            stat("execution_rate", task.execution_rate, pct), stat("contacts_targeted", task.contacts_targeted), stat("contacts_sent", task.contacts_sent)),
          el("p", { class: "muted" }, ...Object.keys(buckets).map(b => el("span", { "data-bucket": b, "data-value": buckets[b], style: "margin-right:12px" }, `${t("b." + b)} ${buckets[b]}`))),
          el("table", { id: "gt-guides" }, el("thead", {}, el("tr", {}, ...[t("lb.guide"), t("ch.store"), "", t("gt.contacts_targeted"), t("gt.contacts_sent")].map((h, i) => el("th", { class: i > 2 ? "n" : undefined }, h)))),
            el("tbody", {}, ...per.guides.map(g => el("tr", { "data-guide-id": g.guide_id, "data-executed": String(g.executed) }, el("td", {}, g.guide_id), el("td", {}, g.store_id),
              el("td", {}, el("span", { class: "pill" }, t(g.executed ? "gt.executed" : "gt.pending"))), el("td", { class: "n" }, num(g.contacts_targeted)),
              el("td", { class: "n" }, num(g.contacts_sent)))))));
        if (task.state === "completed") clearInterval(timers.task);
      } catch (e) { clearInterval(timers.task); fail(e); }
    };
    await refresh();
    every("task", 3000, () => { if (!document.hidden) refresh(); });
  }

  let cursor = null;
  async function loadMembers(more) {
    const q = new URLSearchParams({ limit: "20" });
    for (const [id, k] of [["m-store", "store_id"], ["m-guide", "guide_id"], ["m-channel", "channel"], ["m-tag", "tag"]]) if ($(id).value.trim()) q.set(k, $(id).value.trim());
    if (more && cursor) q.set("cursor", cursor);
    try {
      const page = await admin("GET", "/members?" + q);
      cursor = page.cursor;
      const rows = page.members.map(m => el("tr", { "data-member-id": m.member_id, style: "cursor:pointer", onclick: () => openMember(m) },
        el("td", {}, m.member_id), el("td", {}, when(m.joined_at)), el("td", {}, (m.first_touch || {}).store_id || "—"),
        el("td", {}, (m.tags || []).join(", ")), el("td", { class: "n" }, num(m.orders)), el("td", { class: "n" }, yuan(m.gmv_cents))));
      if (more && $("m-table")) $("m-table").tBodies[0].append(...rows);
      else $("m-list").replaceChildren(el("table", { id: "m-table" }, el("thead", {}, el("tr", {}, ...["ID", t("mem.joined"), t("mem.store"), t("mem.tag"), t("mem.orders"), t("mem.gmv")].map(h => el("th", {}, h)))), el("tbody", {}, ...rows)));
      $("m-more").classList.toggle("hidden", !cursor);
    } catch (e) { fail(e); }
  }

  async function openMember(m) {
    const box = $("m-detail");
    box.classList.remove("hidden");
    let full = m;
    const ident = m.unionid ? ["unionid", m.unionid] : m.oa_openid ? ["openid", m.oa_openid] : m.mp_openid ? ["openid", m.mp_openid] : m.external_userid ? ["external_userid", m.external_userid] : null;
    if (ident) { try { full = await admin("GET", `/members?${ident[0]}=${encodeURIComponent(ident[1])}`); } catch (e) { fail(e); } }
    const touch = x => x ? `${x.store_id || "—"} / ${x.guide_id || "—"} / ${x.scene || x.source || "—"} · ${when(x.at)}` : "—";
    box.replaceChildren(el("h3", {}, full.member_id),
      el("p", {}, `${t("mem.joined")} ${when(full.joined_at)} · ${t("mem.touches")} ${num(full.touches)} · ${t("mem.orders")} ${num(full.orders)} · ${t("mem.gmv")} ${yuan(full.gmv_cents)}`),
      el("p", { class: "muted" }, "first: " + touch(full.first_touch)), el("p", { class: "muted" }, "last: " + touch(full.last_touch)),
      el("p", {}, `${t("mem.tag")}: ${(full.tags || []).join(", ") || "—"}`),
      el("h4", {}, t("mem.coupons")), el("table", {}, el("tbody", {}, ...(full.coupons || []).map(c => el("tr", {}, el("td", {}, c.code), el("td", {}, c.template_id), el("td", {}, c.state), el("td", {}, when(c.valid_until)))))));
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("signin").addEventListener("submit", signIn);
    $("signout").addEventListener("click", () => { sessionStorage.removeItem(SESSION); location.reload(); });
    document.querySelectorAll("[data-tab]").forEach(b => b.addEventListener("click", () => { location.hash = b.dataset.tab; tab(b.dataset.tab); }));
    $("score-go").addEventListener("click", loadScore);
    $("tpl-form").addEventListener("submit", createTemplate);
    $("cmp-form").addEventListener("submit", createCampaign);
    $("m-go").addEventListener("click", () => loadMembers(false));
    $("lb-go").addEventListener("click", loadLeaderboard);
    $("lb-metric").addEventListener("change", loadLeaderboard);
    $("gt-form").addEventListener("submit", createTask);
    $("gt-open").addEventListener("click", () => { if ($("gt-id").value.trim()) openTask($("gt-id").value.trim()); });
    $("m-more").addEventListener("click", () => loadMembers(true));
    document.addEventListener("langchange", () => { if (session) tab(location.hash.slice(1) || "score"); });
    if (session) enter();
  });
})();
