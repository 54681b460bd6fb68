"""SQS consumer of package-code batches: mints one batch per message from its checkpoint."""
import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.observability import flush_metrics, logger
from chalicelib.services import package_codes

processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context(clear_state=True)
def handler(event, context):
    def record_handler(record: SQSRecord) -> None:
        job = json.loads(record.body)
        package_codes.run_job(job["brand_id"], job["batch_id"], context.get_remaining_time_in_millis)
    try:
        return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                        context=context)
    finally:
        flush_metrics()             # PackageCodesMinted
