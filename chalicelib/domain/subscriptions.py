"""Subscribe-message credits: what a popup, a settings change or the mini-program's report means.

Pure: plain data in, plain data out.
"""
from __future__ import annotations

from dataclasses import dataclass

from chalicelib.errors import BadRequest


# ---- subscription credits --------------------------------------------------------------------

# The mini-program reports the popup's answer (POST /me/subscriptions) and WeChat pushes the same
# answer (subscribe_msg_popup_event); a grant from the other source within this window is taken
# as the echo of the one already counted, not a second acceptance.
ECHO_WINDOW_SECONDS = 120
MAX_TEMPLATES = 20


@dataclass(frozen=True)
class SubscriptionChanges:
    accepted: tuple[str, ...] = ()      # one credit each
    rejected: tuple[str, ...] = ()      # no credit; recorded
    revoked: tuple[str, ...] = ()       # the user turned the template off in settings: credits void


def _template_ids(value: object, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_TEMPLATES or not all(
            isinstance(t, str) and 0 < len(t) <= 128 for t in value):
        raise BadRequest(f"{name} must be a list of at most {MAX_TEMPLATES} template ids", code=f"invalid_{name}")
    return tuple(dict.fromkeys(value))


def subscription_request(body: dict) -> SubscriptionChanges:
    """What `wx.requestSubscribeMessage` answered, as the mini-program reports it."""
    accepted, rejected = _template_ids(body.get("accepted"), "accepted"), _template_ids(body.get("rejected"), "rejected")
    if not accepted and not rejected:
        raise BadRequest("give accepted and/or rejected template ids", code="missing_templates")
    if set(accepted) & set(rejected):
        raise BadRequest("a template cannot be both accepted and rejected", code="invalid_templates")
    return SubscriptionChanges(accepted=accepted, rejected=rejected)


SUBSCRIPTION_EVENTS = ("subscribe_msg_popup_event", "subscribe_msg_change_event")


def subscription_changes(msg: dict) -> SubscriptionChanges:
    """Read a subscribe_msg_popup_event / subscribe_msg_change_event. JSON pushes put `List` at the
    top, XML nests it in SubscribeMsgPopupEvent / SubscribeMsgChangeEvent; either way `List` is an
    object for one template and an array for several."""
    event = str(msg.get("Event", "")).lower()
    wrapper = msg.get("SubscribeMsgPopupEvent") if event == "subscribe_msg_popup_event" else msg.get(
        "SubscribeMsgChangeEvent")
    entries = (wrapper.get("List") if isinstance(wrapper, dict) else None) or msg.get("List") or []
    if isinstance(entries, dict):
        entries = [entries]
    accepted, rejected, revoked = [], [], []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        template, status = entry.get("TemplateId"), entry.get("SubscribeStatusString")
        if not isinstance(template, str) or not isinstance(status, str):
            continue                    # an element with children or a JSON object is no template id
        template, status = template.strip(), status.strip().lower()
        if not template or len(template) > 128:
            continue
        if event == "subscribe_msg_popup_event":
            (accepted if status == "accept" else rejected).append(template)
        elif status in ("reject", "ban"):
            revoked.append(template)
        # a change event's "accept" turns notifications back on but grants no one-time credit
    return SubscriptionChanges(tuple(dict.fromkeys(accepted)), tuple(dict.fromkeys(rejected)),
                               tuple(dict.fromkeys(revoked)))
