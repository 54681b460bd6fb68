"""`python -m siyu_dev order`: an order at the till for a demo member, and the scoreboard figures it moved.

The member (by default one the demo history made a buyer once, so this order is their second) logs in
to the mini-program, shows their member code, and the till records the order with it; the stats of
the last 31 days are read before and after, by day, store, guide and channel, and every figure that
changed is printed.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

BYS = ("day", "store", "guide", "channel")


def _wait_for_history(read_state, wait: float) -> dict:
    state = read_state()
    deadline = time.monotonic() + wait
    if "history" not in state:
        print("waiting for `make run` to finish writing the demo history…", flush=True)
    while "history" not in state:
        if time.monotonic() > deadline:
            raise SystemExit(f"the demo history is not written after {wait:.0f} s; is `make run` still starting?")
        time.sleep(1)
        state = read_state()
    return state


def _stats(http, state: dict, first: str, last: str) -> dict[str, dict]:
    brand_id = state["brand"]["brand_id"]
    out = {}
    for by in BYS:
        status, answer = http("GET", f"{state['api_url']}/admin/{brand_id}/stats?from={first}&to={last}&by={by}",
                              None, state["admin_key"])
        if status != 200:
            raise SystemExit(f"GET /admin/{brand_id}/stats → {status} {answer}")
        out[by] = answer
    return out


def _figure(value) -> str:
    return "null" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def moved(before: dict[str, dict], after: dict[str, dict]) -> list[str]:
    """One line per row (and the totals) whose figures changed: `name old → new`."""
    lines = []

    def diff(label: str, old: dict, new: dict) -> None:
        changed = [f"{name} {_figure(old.get(name))} → {_figure(value)}" for name, value in new.items()
                   if name != "key" and old.get(name) != value]
        if changed:
            lines.append(f"  {label:<24} " + ", ".join(changed))

    for by in BYS:
        old_rows = {r["key"]: r for r in before[by]["rows"]}
        for row in after[by]["rows"]:
            diff(f"by={by} {row['key'] if row['key'] is not None else 'null'}", old_rows.get(row["key"], {}), row)
    diff("totals", before["day"]["totals"], after["day"]["totals"])
    return lines


def cmd_order(args) -> None:
    """Record an order at a demo till for a demo member (their member code, as the till scans it), and
    print the scoreboard figures of the last 31 days that it moved, by day, store, guide and channel."""
    from siyu_dev.__main__ import _show, _state, http
    state = _wait_for_history(_state, args.wait)
    brand = state["brand"]
    api, sim, brand_id = state["api_url"], state["wechat_url"], brand["brand_id"]
    openid = args.openid or state["history"]["order_member"]
    today = datetime.now(ZoneInfo(brand["timezone"])).date()
    first, last = (today - timedelta(days=30)).isoformat(), today.isoformat()
    before = _stats(http, state, first, last)

    _, code = http("POST", f"{sim}/__sim/codes", {"openid": openid, "app_id": brand["wechat"]["mp"]["app_id"]})
    status, session = http("POST", f"{api}/mp/{brand_id}/login", {"code": code["code"]})
    if status != 200:
        raise SystemExit(f"mini-program login → {status} {session}")
    status, member_code = http("GET", f"{api}/mp/{brand_id}/me/member-code", None, session["session"])
    _show(f"{openid}'s member code", status, member_code)
    order = {"order_id": f"till-{time.time_ns() // 1000}", "amount_cents": args.amount,
             "member_code": member_code["member_code"], "till_id": "till-1"}
    status, answer = http("POST", f"{api}/pos/{brand_id}/stores/{args.store}/orders", order,
                          state["pos_keys"][args.store], headers={"Idempotency-Key": order["order_id"]})
    _show(f"order at {args.store}", status, answer)
    if status != 201:
        raise SystemExit(1)
    after = _stats(http, state, first, last)
    print(f"\nthe scoreboard, {first} .. {last}: what moved")
    print("\n".join(moved(before, after)) or "  nothing (is the order outside the range?)")
    print(f"\nall of it: curl -s -H 'Authorization: Bearer {state['admin_key']}' "
          f"'{api}/admin/{brand_id}/stats?from={first}&to={last}&by=store'")


def add_parser(sub, command) -> None:
    """Register `order` on the `python -m siyu_dev` parser (`command`: its helper for subcommands)."""
    py = "  .venv/bin/python -m siyu_dev"
    parser = command(sub, "order", cmd_order, "an order at the till for a demo member, and the stats it moved",
                     f"{py} order\n{py} order --amount 12800 --store sh-jingan\n{py} order --openid o_hist_000")
    parser.add_argument("--openid", default=None,
                        help="the member's mini-program openid (default: a member the history made a buyer once)")
    parser.add_argument("--amount", type=int, default=3800, help="the order's amount in cents (default 3800)")
    parser.add_argument("--store", default="sz-futian", help="the till's store (sz-futian or sh-jingan)")
    parser.add_argument("--wait", type=float, default=120,
                        help="seconds to wait for `make run` to finish the demo history (default 120)")


__all__ = ["cmd_order", "add_parser", "moved"]
