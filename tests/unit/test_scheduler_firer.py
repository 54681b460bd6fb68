"""The local pump's stand-in for EventBridge Scheduler: when a schedule is due, in its time zone."""
from datetime import datetime, timezone

from siyu_dev.pump import SchedulerFirer


def schedule(expression: str, tz: str = "Asia/Shanghai") -> dict:
    return {"Name": "s", "ScheduleExpression": expression, "ScheduleExpressionTimezone": tz}


def test_a_one_time_schedule_is_due_once_its_wall_time_has_passed_in_its_time_zone():
    at = schedule("at(2025-03-02T10:00:00)")                  # 02:00 UTC
    assert SchedulerFirer.due_time(at, datetime(2025, 3, 2, 1, 59, 59, tzinfo=timezone.utc)) is None
    due = SchedulerFirer.due_time(at, datetime(2025, 3, 2, 2, 0, 30, tzinfo=timezone.utc))
    assert due == datetime(2025, 3, 2, 2, 0, tzinfo=timezone.utc)


def test_a_cron_schedule_is_due_in_the_minute_it_matches_locally():
    daily = schedule("cron(0 10 * * ? *)")
    assert SchedulerFirer.due_time(daily, datetime(2025, 3, 2, 2, 0, 42, tzinfo=timezone.utc)) == datetime(
        2025, 3, 2, 2, 0, tzinfo=timezone.utc)
    assert SchedulerFirer.due_time(daily, datetime(2025, 3, 2, 10, 0, tzinfo=timezone.utc)) is None  # 18:00 there
    assert SchedulerFirer.due_time(schedule("rate(5 minutes)"), datetime.now(timezone.utc)) is None
