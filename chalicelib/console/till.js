/* 核销台: look a shopper up by member code, redeem one of their coupons (or a typed code), reverse.

   Never twice: each redemption attempt gets one Idempotency-Key, saved in sessionStorage (with its
   body) before the request leaves. A retry — the clerk taps again, the network failed, the page was
   reloaded — sends the same key and body, so the API replays the first answer instead of redeeming
   again. Only a final answer (2xx, or a 4xx refusal) ends the attempt. */
"use strict";
(function () {
  const { t, call, yuan, when, el, newKey, ApiError } = siyu;
  siyu.add({
    "till.title": ["核销台", "Till"], "till.store_id": ["门店 ID", "Store id"], "till.pos_key": ["门店 POS 密钥", "Store POS key"],
    "till.till_id": ["收银台编号", "Till id"], "till.amount": ["订单金额（元）", "Order amount (¥)"],
    "till.member_code": ["会员码", "Member code"], "till.scan": ["扫码", "Scan"], "till.scan_stop": ["停止扫码", "Stop"],
    "till.lookup": ["查询", "Look up"], "till.coupon_code": ["券码", "Coupon code"], "till.redeem": ["核销", "Redeem"],
    "till.order_id": ["订单号（可选）", "Order number (optional)"], "till.today": ["今日核销", "Today's redemptions"],
    "till.refresh": ["刷新", "Refresh"], "till.col_time": ["时间", "Time"], "till.col_code": ["券", "Coupon"],
    "till.col_discount": ["优惠", "Discount"], "till.reverse": ["撤销", "Reverse"], "till.reversed": ["已撤销", "Reversed"],
    "till.member": ["会员", "Member"], "till.usable": ["本单可用的券", "Coupons usable on this order"],
    "till.none_usable": ["没有本单可用的券", "No coupon usable on this order"],
    "till.redeemed_ok": ["核销成功，优惠 ", "Redeemed, discount "], "till.reversed_ok": ["已撤销核销", "Redemption reversed"],
    "till.resuming": ["上次核销未确认，正在重新确认…", "Confirming the last redemption…"],
    "till.need_amount": ["请输入订单金额", "Enter the order amount"], "till.need_code": ["请输入券码或会员码", "Enter a code"],
    "till.no_camera": ["无法使用摄像头，请手动输入", "No camera: type the code"], "till.confirm_reverse": ["确认撤销这笔核销？", "Reverse this redemption?"],
    "till.joined": ["入会", "Joined"], "till.tags": ["标签", "Tags"], "till.min_spend": ["满", "Min. spend "], "till.valid_until": ["有效期至", "Valid until"],
  });

  const SESSION = "siyu.till", PENDING = "siyu.till.pending";
  const $ = id => document.getElementById(id);
  let session = JSON.parse(sessionStorage.getItem(SESSION) || "null");
  let busy = false;

  const base = () => `/pos/${encodeURIComponent(session.brand)}/stores/${encodeURIComponent(session.store)}`;
  const show = (id, kind, text) => { $(id).replaceChildren(text ? el("div", { class: "msg " + kind, role: "status" }, text) : ""); };

  function amountCents() {
    const raw = $("amount").value.trim();
    if (!/^\d{1,7}(\.\d{1,2})?$/.test(raw)) return null;
    const [y, f = ""] = raw.split(".");
    return parseInt(y, 10) * 100 + parseInt((f + "00").slice(0, 2), 10);
  }

  // ---- sign in ----------------------------------------------------------------------------
  async function signIn(ev) {
    ev.preventDefault();
    const s = { brand: $("si-brand").value.trim(), store: $("si-store").value.trim(), key: $("si-key").value.trim(),
                till: $("si-till").value.trim() || "till-1" };
    session = s;
    try {
      await call("GET", base() + "/redemptions?limit=1", { key: s.key });     // proves the key is this store's
    } catch (e) {
      session = null;
      show("si-msg", "error", e instanceof ApiError ? e.text : String(e));
      return;
    }
    sessionStorage.setItem(SESSION, JSON.stringify(s));
    $("si-key").value = "";
    enter();
  }

  function enter() {
    $("signin").classList.add("hidden"); $("work").classList.remove("hidden"); $("signout").classList.remove("hidden");
    $("who").textContent = `${session.brand} / ${session.store}`;
    loadToday();
    resumePending();
  }

  function signOut() { stopScan(); sessionStorage.removeItem(SESSION); session = null; location.reload(); }

  // ---- member lookup ------------------------------------------------------------------------
  async function lookup() {
    const cents = amountCents(), code = $("member-code").value.trim();
    if (cents === null) return show("msg", "error", t("till.need_amount"));
    if (!code) return show("msg", "error", t("till.need_code"));
    show("msg", "", "");
    try {
      const found = await call("POST", base() + "/member-lookup", { key: session.key, body: { member_code: code, order_amount_cents: cents } });
      renderMember(found, cents);
    } catch (e) {
      $("member").classList.add("hidden");
      show("msg", "error", e.text || String(e));
    }
  }

  function renderMember(found, cents) {
    const m = found.member, box = $("member");
    box.replaceChildren(
      el("h3", { style: "margin:0 0 6px" }, t("till.member"), " ", el("span", { class: "pill", id: "member-id" }, m.member_id)),
      el("div", { class: "muted" }, `${t("till.joined")} ${when(m.joined_at)} · ${t("till.tags")} ${(m.tags || []).join(", ") || "—"}`),
      el("h4", { style: "margin:12px 0 0" }, t("till.usable")),
      found.coupons.length ? "" : el("p", { class: "muted", id: "no-coupons" }, t("till.none_usable")),
      ...found.coupons.map(c => el("div", { class: "coupon", "data-code": c.code },
        el("div", {}, el("div", { class: "name" }, c.name || c.template_id),
          el("div", { class: "muted" }, `${c.code} · ${t("till.valid_until")} ${when(c.valid_until)}`)),
        el("div", { class: "n", "data-discount": c.discount_cents }, "-" + yuan(c.discount_cents)),
        el("button", { class: "primary redeem", type: "button", onclick: () => redeem(c.code, cents) }, t("till.redeem")))));
    box.classList.remove("hidden");
  }

  // ---- redeem, exactly once ---------------------------------------------------------------------
  async function redeemTyped() {
    const cents = amountCents(), code = $("coupon-code").value.trim().toUpperCase();
    if (cents === null) return show("msg", "error", t("till.need_amount"));
    if (!code) return show("msg", "error", t("till.need_code"));
    redeem(code, cents);
  }

  function redeem(code, cents) {
    if (busy) return;                  // a double tap while the first is in flight does nothing
    let pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
    const orderId = $("order-id").value.trim() || null;
    // the same coupon and amount as an unconfirmed attempt: that attempt again (same key), not a new one
    if (!pending || pending.body.code !== code || pending.body.order_amount_cents !== cents
        || (orderId && pending.body.order_id !== orderId)) {
      pending = { key: newKey(), path: base() + "/redemptions",
                  body: { code, order_id: orderId || ("T" + Date.now()), order_amount_cents: cents, till_id: session.till } };
      sessionStorage.setItem(PENDING, JSON.stringify(pending));
    }
    return send(pending);
  }

  async function send(pending) {
    busy = true;
    document.querySelectorAll("button.redeem, #redeem-code").forEach(b => b.disabled = true);
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          const done = await call("POST", pending.path, { key: session.key, body: pending.body,
                                                          headers: { "Idempotency-Key": pending.key } });
          sessionStorage.removeItem(PENDING);
          show("msg", "ok", t("till.redeemed_ok") + yuan(done.discount_cents) + ` (${done.coupon.code})`);
          $("msg").firstChild.dataset.redemptionId = done.redemption_id;
          $("coupon-code").value = "";
          const row = document.querySelector(`#member .coupon[data-code="${CSS.escape(done.coupon.code)}"]`);
          if (row) row.remove();
          loadToday({ id: done.redemption_id, reversed: false });
          return done;
        } catch (e) {
          // no answer, or the service could not serve: the same key again, after a pause
          if ((e.status === 0 || e.status >= 500) && attempt < 4) {
            show("msg", "error", t("network"));
            await new Promise(r => setTimeout(r, 800 * (attempt + 1)));
            continue;
          }
          if (e.status !== 0 && e.status < 500) sessionStorage.removeItem(PENDING);   // a refusal is final
          show("msg", "error", e.text || String(e));
          $("msg").firstChild.dataset.code = e.code;
          return null;
        }
      }
    } finally {
      busy = false;
      document.querySelectorAll("button.redeem, #redeem-code").forEach(b => b.disabled = false);
    }
  }

  function resumePending() {
    const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
    if (!pending || !pending.path.startsWith(base())) return;
    show("msg", "", t("till.resuming"));
    send(pending);
  }

  // ---- today and reversal ---------------------------------------------------------------------
  /* The day's list is read from an index DynamoDB updates a moment after the write: when a redemption
     just made (or reversed) is not there yet, read again shortly (a few times) rather than show a stale list. */
  async function loadToday(expect, tries = 0) {
    try {
      const day = await call("GET", base() + "/redemptions?limit=200", { key: session.key });
      const row = expect && day.redemptions.find(r => r.redemption_id === expect.id);
      if (expect && (!row || !!row.reversed_at !== expect.reversed) && tries < 4) {
        setTimeout(() => loadToday(expect, tries + 1), 500 * (tries + 1));
      }
      $("today").replaceChildren(...day.redemptions.map(r => el("tr", { "data-redemption-id": r.redemption_id },
        el("td", {}, when(r.redeemed_at).split(" ").pop()),
        el("td", {}, r.code, el("div", { class: "muted" }, r.order_id)),
        el("td", { class: "n", "data-value": r.discount_cents }, yuan(r.discount_cents)),
        el("td", {}, r.reversed_at ? el("span", { class: "pill reversed" }, t("till.reversed"))
          : el("button", { class: "danger reverse", type: "button", onclick: () => reverse(r.redemption_id) }, t("till.reverse"))))));
    } catch (e) { show("msg", "error", e.text || String(e)); }
  }

  async function reverse(id) {
    if (!confirm(t("till.confirm_reverse"))) return;
    try {
      await call("POST", `${base()}/redemptions/${encodeURIComponent(id)}/reversal`, { key: session.key });
      show("msg", "ok", t("till.reversed_ok"));
    } catch (e) { show("msg", "error", e.text || String(e)); }
    loadToday({ id, reversed: true });
  }

  // ---- camera ---------------------------------------------------------------------------------
  let stream = null, timer = null;
  async function startScan() {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    } catch (e) { return show("msg", "error", t("till.no_camera")); }
    const video = $("video");
    video.srcObject = stream; await video.play();
    $("camera").classList.remove("hidden");
    let detect;
    if ("BarcodeDetector" in window) {
      const detector = new BarcodeDetector({ formats: ["qr_code"] });
      detect = async () => { const found = await detector.detect(video); return found.length ? found[0].rawValue : null; };
    } else {
      await loadScript("jsQR.js");      // the vendored decoder, only where the browser has none
      const canvas = document.createElement("canvas"), ctx = canvas.getContext("2d", { willReadFrequently: true });
      detect = async () => {
        if (!video.videoWidth) return null;
        canvas.width = video.videoWidth; canvas.height = video.videoHeight;
        ctx.drawImage(video, 0, 0);
        const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
        const found = window.jsQR(img.data, img.width, img.height);
        return found ? found.data : null;
      };
    }
    timer = setInterval(async () => {
      const value = await detect().catch(() => null);
      if (value) { $("member-code").value = value.trim(); stopScan(); lookup(); }
    }, 250);
  }
  function stopScan() {
    clearInterval(timer); timer = null;
    if (stream) stream.getTracks().forEach(tr => tr.stop());
    stream = null; $("camera").classList.add("hidden");
  }
  function loadScript(src) {
    return new Promise((ok, fail) => { if (window.jsQR) return ok(); const s = document.createElement("script"); s.src = src; s.onload = ok; s.onerror = fail; document.head.append(s); });
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("signin").addEventListener("submit", signIn);
    $("signout").addEventListener("click", signOut);
    $("lookup").addEventListener("click", lookup);
    $("redeem-code").addEventListener("click", redeemTyped);
    $("refresh").addEventListener("click", () => loadToday());
    $("scan").addEventListener("click", startScan);
    $("scan-stop").addEventListener("click", stopScan);
    $("member-code").addEventListener("keydown", e => { if (e.key === "Enter") lookup(); });
    if (session) enter();
  });
})();
