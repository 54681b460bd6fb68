/* siyu console: what every page shares — the API base, calls with error mapping, language, formats.
   No framework: plain DOM. Keys live in sessionStorage (this tab only; never in a URL). */
"use strict";
(function () {
  const path = location.pathname;
  // The API is the origin the page came from, under the same prefix (an API Gateway stage, if any).
  const BASE = path.slice(0, Math.max(0, path.indexOf("/console")));

  const I18N = {
    zh: {}, en: {}
  };
  function add(dict) { for (const k in dict) { I18N.zh[k] = dict[k][0]; I18N.en[k] = dict[k][1]; } }
  add({
    lang_toggle: ["English", "中文"],
    sign_out: ["退出", "Sign out"], sign_in: ["登录", "Sign in"], brand_id: ["品牌 ID", "Brand id"],
    loading: ["加载中…", "Loading…"], network: ["网络异常，正在重试…", "Network trouble, retrying…"],
    // refusals and errors by the API's code: what a clerk or an operator reads
    "err.unknown_code": ["券码不存在", "No such coupon code"],
    "err.already_redeemed": ["已核销", "Already redeemed"],
    "err.reversed": ["券已作废（核销已撤销）", "Coupon voided when its redemption was reversed"],
    "err.expired": ["已过期", "Expired"],
    "err.not_yet_valid": ["未到使用时间", "Not valid yet"],
    "err.wrong_store": ["不适用于本店", "Not valid at this store"],
    "err.min_spend_not_met": ["未满最低消费", "Minimum spend not met"],
    "err.invalid_member_code": ["会员码无效或已过期，请顾客刷新会员码", "Member code invalid or expired: ask the shopper to refresh it"],
    "err.too_many_unknown_codes": ["错误券码过多，请稍后再试", "Too many unknown codes; wait a few minutes"],
    "err.idempotency_key_reused": ["请求冲突，请重新操作", "Conflicting request; start again"],
    "err.unknown_redemption": ["核销记录不存在", "No such redemption"],
    "err.reversal_window_closed": ["已超过可撤销期限", "Too late to reverse"],
    "err.unauthorized": ["密钥无效", "Invalid key"], "err.invalid_key": ["密钥无效", "Invalid key"],
    "err.missing_key": ["请输入密钥", "Enter a key"], "err.invalid_order_id": ["订单号无效", "Invalid order number"],
    "err.invalid_till_id": ["收银台编号无效", "Invalid till id"],
    "err.missing_idempotency_key": ["请求缺少幂等键", "The request lacks its Idempotency-Key"],
    "err.forbidden": ["该密钥无权访问", "This key has no access here"],
    "err.unknown_brand": ["品牌不存在", "No such brand"],
    "err.unknown_store": ["门店不存在", "No such store"],
    "err.invalid_order_amount_cents": ["金额无效", "Invalid amount"],
    "err.invalid_transition": ["当前状态不允许此操作", "Not allowed in the current state"],
    "err.unavailable": ["服务暂不可用，请稍后再试", "Service unavailable; try again shortly"],
    "err.internal": ["系统错误", "Internal error"],
    "err.network": ["网络错误", "Network error"],
  });

  let lang = localStorage.getItem("siyu.lang") || "zh";

  function t(key) { return (I18N[lang] && I18N[lang][key]) || I18N.zh[key] || key; }

  function applyLang(root) {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    (root || document).querySelectorAll("[data-i18n]").forEach(el => { el.textContent = t(el.dataset.i18n); });
    (root || document).querySelectorAll("[data-i18n-placeholder]").forEach(el => {
      el.placeholder = t(el.dataset.i18nPlaceholder);
    });
  }

  function setLang(next) { lang = next; localStorage.setItem("siyu.lang", next); applyLang(); document.dispatchEvent(new Event("langchange")); }

  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
    get text() { const k = "err." + this.code; const tr = t(k); return tr === k ? (this.message || this.code) : tr; }
  }

  /* One HTTP call. A 2xx resolves to the JSON body; a siyu error rejects with ApiError(code);
     a network failure rejects with ApiError(0, "network"). */
  async function call(method, apiPath, { key, body, headers } = {}) {
    const h = Object.assign({}, headers || {});
    if (key) h["Authorization"] = "Bearer " + key;
    if (body !== undefined) h["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(BASE + apiPath, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
                                           cache: "no-store", credentials: "omit" });
    } catch (e) {
      throw new ApiError(0, "network", String(e));
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (resp.ok) return data;
    const err = (data && data.error) || {};
    throw new ApiError(resp.status, err.code || ("http_" + resp.status), err.message || resp.statusText);
  }

  /* A binary answer (a code's PNG, a store's PDF) fetched with the key in the Authorization header, shown
     through a blob: URL: a key never goes into an <img src> or a link. `accept` is the type asked for
     (API Gateway, and Chalice locally, answer binary bodies only to a matching Accept). */
  async function blob(apiPath, { key, accept }) {
    let resp;
    try {
      resp = await fetch(BASE + apiPath, { headers: { Authorization: "Bearer " + key, Accept: accept }, cache: "no-store", credentials: "omit" });
    } catch (e) { throw new ApiError(0, "network", String(e)); }
    if (!resp.ok) {
      let err = {};
      try { err = (await resp.json()).error || {}; } catch (e) { err = {}; }
      throw new ApiError(resp.status, err.code || ("http_" + resp.status), err.message || resp.statusText);
    }
    const body = await resp.blob();
    return { blob: body, url: URL.createObjectURL(body), type: body.type, bytes: body.size };
  }

  const yuan = cents => (cents === null || cents === undefined) ? "—"
    : (cents < 0 ? "-" : "") + "¥" + (Math.abs(cents) / 100).toFixed(2);
  const pct = v => (v === null || v === undefined) ? "—" : (v * 100).toFixed(2) + "%";
  const num = v => (v === null || v === undefined) ? "—" : String(v);
  const when = iso => { if (!iso) return "—"; const d = new Date(iso); return isNaN(d) ? iso : d.toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { hour12: false }); };
  const esc = s => String(s).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  /* An element: el("td", {class: "n", "data-value": 3}, "3") */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }

  function newKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, x => x.toString(16).padStart(2, "0")).join("");
  }

  function wireLangToggle() {
    document.querySelectorAll("[data-lang-toggle]").forEach(b => b.addEventListener("click", () => setLang(lang === "zh" ? "en" : "zh")));
    document.querySelectorAll("a[data-page]").forEach(a => { a.href = BASE + "/console/" + a.dataset.page; });
  }

  window.siyu = { BASE, I18N, add, t, applyLang, setLang, get lang() { return lang; }, ApiError, call, blob, yuan, pct, num, when, esc, el, newKey };
  document.addEventListener("DOMContentLoaded", () => { wireLangToggle(); applyLang(); });
})();
