"""SQS consumer of the guidetasks queue: head-office task fires, guides' chunks, polls (services.guide_tasks)."""
import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.observability import logger
from chalicelib.services import guide_tasks

processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context(clear_state=True)
def handler(event, context):
    def record_handler(record: SQSRecord) -> None:
        guide_tasks.handle(json.loads(record.body), remaining=lambda: context.get_remaining_time_in_millis() / 1000)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
