"""SQS consumer of the send queue: campaign chunks (services.sending).

The chunks of a batch are delivered side by side (AsyncBatchProcessor; each chunk's coordinator in
a thread) over the one bounded pool of WeChat calls, so the pool never drains between chunks. A
chunk with recipients left to retry is reported as a batch item failure and made visible again
after a backoff that grows with its receive count; after maxReceiveCount it goes to the DLQ.
"""
import asyncio
import json
import os
from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib import aws
from chalicelib.observability import flush_metrics, logger
from chalicelib.resources import queue
from chalicelib.services import sending

processor = AsyncBatchProcessor(event_type=EventType.SQS)
_coordinators = ThreadPoolExecutor(max_workers=queue("send").batch_size, thread_name_prefix="chunk")


def _retry_later(record: SQSRecord) -> None:
    receives = int(record.attributes.approximate_receive_count or 1)
    try:
        aws.client("sqs").change_message_visibility(QueueUrl=os.environ[queue("send").env],
                                                    ReceiptHandle=record.receipt_handle,
                                                    VisibilityTimeout=min(600, 30 * 2 ** (receives - 1)))
    except Exception:  # noqa: BLE001 - the queue's own visibility timeout applies instead
        logger.warning("could not shorten the retry delay", exc_info=True)


@logger.inject_lambda_context(clear_state=True)
def handler(event, context):
    def remaining() -> float:
        return context.get_remaining_time_in_millis() / 1000

    def deliver(record: SQSRecord) -> None:
        try:
            sending.deliver_chunk(json.loads(record.body), remaining=remaining)
        except sending.ChunkIncomplete:
            _retry_later(record)
            raise

    async def record_handler(record: SQSRecord) -> None:
        await asyncio.get_running_loop().run_in_executor(_coordinators, deliver, record)

    try:
        return async_process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                              context=context)
    finally:
        flush_metrics()
