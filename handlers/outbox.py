"""DynamoDB stream consumer (filtered to kind=outbox): publishes domain events and follow-up tasks."""
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from chalicelib.observability import logger
from chalicelib.services import outbox

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def record_handler(record: DynamoDBRecord) -> None:
    outbox.publish(record.dynamodb.new_image)


@logger.inject_lambda_context(clear_state=True)
def handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
