"""The renames of issue 10's "one name per concept" keep old data working: a campaign body with
`message.channel`, a spec stored with `channel`, a queue body with `fire`; and the new names are the
ones answered."""
import pytest

from chalicelib.domain import campaigns as rules
from chalicelib.errors import BadRequest
from datetime import datetime, timezone

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)


def spec(message: dict) -> rules.Spec:
    return rules.spec({"name": "n", "message": message}, brand_timezone="Asia/Shanghai", now=NOW)


def test_the_old_message_channel_is_read_as_the_medium_and_answered_as_medium():
    old = spec({"channel": "oa_custom", "text": "hi"})
    assert old.message.medium == "oa_custom" and old == spec({"medium": "oa_custom", "text": "hi"})
    assert old.view()["message"]["medium"] == "oa_custom" and "channel" not in old.view()["message"]
    assert spec({"medium": "oa_custom", "channel": "oa_custom", "text": "hi"}).message.medium == "oa_custom"


@pytest.mark.parametrize("message,code", [
    ({"medium": "sms", "text": "hi"}, "unknown_medium"),
    ({"channel": "sms", "text": "hi"}, "unknown_medium"),
    ({"medium": "oa_custom", "channel": "mp_subscribe", "text": "hi"}, "conflicting_medium"),
])
def test_a_bad_medium_is_refused_by_its_new_name(message, code):
    with pytest.raises(BadRequest) as refused:
        spec(message)
    assert refused.value.code == code


def test_a_spec_stored_with_channel_still_reads():
    new = spec({"medium": "mp_subscribe", "template_id": "T"})
    stored = new.to_json().replace('"medium":', '"channel":')
    assert '"channel":"mp_subscribe"' in stored and rules.Spec.from_json(stored) == new


def test_a_queue_body_from_before_the_rename_keeps_its_run():
    assert rules.run_id_of({"run_id": "once"}) == "once"
    assert rules.run_id_of({"fire": "2026-11-30T08:00Z"}) == "2026-11-30T08:00Z"        # queued before a deploy
    assert rules.run_id_of({"run_id": "a", "fire": "a"}) == "a"
    assert rules.run_id_of({"kind": "fire"}, required=False) is None
    with pytest.raises(KeyError):
        rules.run_id_of({"kind": "fire"})


def test_outcomes_have_one_vocabulary():
    assert rules.classify(43101).state == "skipped" and rules.classify(40037).state == "failed"
    assert rules.classify(-1, outcome_unknown=True) == rules.Outcome("failed", rules.OUTCOME_UNKNOWN)
    assert rules.outcome_key("skipped", "no_credit") == "skipped:no_credit"
    assert rules.outcome_key("failed", None) == "failed:unknown" and rules.outcome_key("sent", None) == "sent"
