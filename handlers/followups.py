"""SQS consumer of slow follow-ups (welcome messages, welcome coupons); reports partial batch failures."""
import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.observability import flush_metrics, logger
from chalicelib.services import followups

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    task = json.loads(record.body)
    followups.run(task["name"], task["detail"])


@logger.inject_lambda_context(clear_state=True)
def handler(event, context):
    try:
        return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                        context=context)
    finally:
        flush_metrics()             # WelcomeMessagesSent, CouponsIssued
