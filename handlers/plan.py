"""SQS consumer of the plan queue: schedule fires and audience shards (services.planning)."""
import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.observability import logger
from chalicelib.services import planning

processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context(clear_state=True)
def handler(event, context):
    def record_handler(record: SQSRecord) -> None:
        planning.handle(json.loads(record.body), remaining=lambda: context.get_remaining_time_in_millis() / 1000)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
