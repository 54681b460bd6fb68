"""The one table of what a WeChat / WeCom answer means, for every caller (campaigns, welcome messages,
logins, lookups): the same answer is treated the same way everywhere. Pure: no I/O.

Kinds, in the order a caller should think about them:

- `outcome_unknown`: the request may have reached WeChat and no answer says what happened (a read
  timeout after the request was written, a connection reset mid-call, a 504, an unreadable 200).
  A message send in this state must never be sent again: it is recorded, not retried.
- `transient`: WeChat certainly did not act (it said "busy" or "over the rate", answered 5xx, or the
  connection was never made): the same call may be retried, with backoff.
- `token_invalid`: the access token is stale: expire exactly that token and retry once.
- `recipient`: a permanent answer about this recipient (refused, unknown openid, outside the window,
  over the per-user customer-service quota): recorded with a reason, never retried.
- `config`: the account or siyu's deployment is misconfigured (egress IP not whitelisted, wrong
  secret or app id, API not authorized): nothing sent to anyone will succeed until a person fixes
  it. Logged as an error and counted as `WeChatConfigError`, never retried as transient.
- `request`: any other refusal of this request (bad template, bad data): recorded, never retried.
"""
from __future__ import annotations

from dataclasses import dataclass

OUTCOME_UNKNOWN = "outcome_unknown"
TRANSIENT = "transient"
TOKEN_INVALID = "token_invalid"
RECIPIENT = "recipient"
CONFIG = "config"
REQUEST = "request"

# the client's own code for "no usable answer": with outcome_unknown=False it is a proven non-delivery
SYSTEM_BUSY = -1

_TRANSIENT = {
    -1,         # system busy (WeChat's own -1, and the client's code for 5xx / connection not made)
    45009,      # API daily quota reached (resets; the call was refused)
    45011,      # API minute quota reached
    45033,      # API call frequency limit
}
_TOKEN_INVALID = {40001, 40014, 42001}      # invalid / malformed / expired access_token

# permanent answers about one recipient, and the reason recorded for them
RECIPIENT_REASONS = {
    43101: "unsubscribed",        # the user refused the subscription message / has no credit left
    43004: "unsubscribed",        # needs the user to follow the official account
    40003: "invalid_openid",
    45015: "outside_48h",         # customer-service message outside the 48 h window
    # "客服接口下行条数超过上限" (out of response count limit): WeChat allows a few customer-service
    # messages per user interaction; more only after the user writes, taps a menu, pays ... again.
    # Per user, not per app, and not cured by waiting seconds: a retry cannot succeed.
    45047: "response_limit",
    43019: "blocked",             # the user blocked the account
}

# the account or the deployment is misconfigured: a person must act, retrying cannot help
CONFIG_ERRORS = {
    40164: "the calling IP is not on the account's API IP whitelist: add siyu's egress IPs",
    60020: "the calling IP is not a trusted IP of the WeCom app: add siyu's egress IPs",
    61004: "the calling IP is not on the third-party platform's whitelist: add siyu's egress IPs",
    40125: "the app secret is wrong",
    40013: "the app id (or WeCom corp id) is wrong",
    41002: "the app id is missing",
    41004: "the app secret is missing",
    40056: "the WeCom agent id is wrong",
    48001: "the account is not authorized for this API (check its type, verification and permissions)",
    48002: "this API is disabled for the WeCom app",
    48004: "this API is banned for the account",
}
# a token endpoint answering "invalid credential" means the secret is wrong, not that a token went stale
TOKEN_APIS = {"cgi-bin/token", "cgi-bin/stable_token", "cgi-bin/gettoken"}
_BAD_SECRET_AT_TOKEN_API = {40001: "the app secret is wrong (or does not belong to this app id)"}


@dataclass(frozen=True)
class Verdict:
    kind: str
    reason: str          # recorded with the outcome: a recipient reason, errcode_<n>, outcome_unknown
    hint: str | None = None   # for configuration errors: what a person has to fix


def classify(errcode: int, *, api: str | None = None, outcome_unknown: bool = False) -> Verdict:
    """What a WeChat answer (an `errcode`, from `api`) means. `outcome_unknown` (the client could
    not tell whether WeChat acted) wins over any code."""
    if outcome_unknown:
        return Verdict(OUTCOME_UNKNOWN, OUTCOME_UNKNOWN)
    if api in TOKEN_APIS and errcode in _BAD_SECRET_AT_TOKEN_API:
        return Verdict(CONFIG, f"errcode_{errcode}", _BAD_SECRET_AT_TOKEN_API[errcode])
    if errcode in CONFIG_ERRORS:
        return Verdict(CONFIG, f"errcode_{errcode}", CONFIG_ERRORS[errcode])
    if errcode in _TRANSIENT:
        return Verdict(TRANSIENT, f"errcode_{errcode}")
    if errcode in _TOKEN_INVALID:
        return Verdict(TOKEN_INVALID, f"errcode_{errcode}")
    if errcode in RECIPIENT_REASONS:
        return Verdict(RECIPIENT, RECIPIENT_REASONS[errcode])
    return Verdict(REQUEST, f"errcode_{errcode}")
