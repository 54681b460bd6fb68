"""Create chalicelib.resources on the AWS emulator, the same list infra/ deploys.

Returns the environment the API and workers need (what infra/ passes to the Lambdas), using
local physical names `siyu-<stage>-<key>`.
"""
from __future__ import annotations

import json

from chalicelib import aws, resources

TAP_QUEUE = "bus-tap"   # local-only: every event on the bus lands here too, for the demo and tests


def name(stage: str, key: str) -> str:
    return f"siyu-{stage}-{key}"


def _create_table(spec: resources.Table, table_name: str) -> str:
    ddb = aws.client("dynamodb")
    attrs = {spec.pk, spec.sk} | {a for ix in spec.indexes for a in (ix.pk, ix.sk)}
    kwargs = dict(
        TableName=table_name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": spec.pk, "KeyType": "HASH"}, {"AttributeName": spec.sk, "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in sorted(attrs)],
    )
    if spec.indexes:
        kwargs["GlobalSecondaryIndexes"] = [{
            "IndexName": ix.name, "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": ix.pk, "KeyType": "HASH"}, {"AttributeName": ix.sk, "KeyType": "RANGE"}],
        } for ix in spec.indexes]
    if spec.stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": spec.stream}
    try:
        ddb.create_table(**kwargs)
    except ddb.exceptions.ResourceInUseException:
        pass
    if spec.ttl_attribute:
        ddb.update_time_to_live(TableName=table_name, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": spec.ttl_attribute})
    return table_name


def _create_queue(queue_name: str, attributes: dict | None = None) -> tuple[str, str]:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=queue_name, Attributes=attributes or {})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def provision(stage: str = "local") -> dict[str, str]:
    env: dict[str, str] = {}
    for spec in resources.TABLES:
        env[spec.env] = _create_table(spec, name(stage, spec.key))
    for spec in resources.QUEUES:
        _dlq_url, dlq_arn = _create_queue(name(stage, spec.key + "-dlq"))
        url, _arn = _create_queue(name(stage, spec.key), {
            "VisibilityTimeout": str(spec.visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.max_receive_count}),
        })
        env[spec.env] = url
        if spec.key == resources.SCHEDULES.target_queue:
            env[resources.PLAN_DLQ_ARN_ENV] = dlq_arn
    events = aws.client("events")
    bus = name(stage, "bus")
    try:
        events.create_event_bus(Name=bus)
    except events.exceptions.ResourceAlreadyExistsException:
        pass
    env[resources.BUS.env] = bus
    tap_url, tap_arn = _create_queue(name(stage, TAP_QUEUE))
    events.put_rule(Name="tap", EventBusName=bus, EventPattern=json.dumps({"source": [resources.BUS.source]}))
    events.put_targets(Rule="tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": tap_arn}])
    env["SIYU_LOCAL_TAP_QUEUE_URL"] = tap_url
    scheduler = aws.client("scheduler")
    group = name(stage, "schedules")
    try:
        scheduler.create_schedule_group(Name=group)
    except scheduler.exceptions.ConflictException:
        pass
    env[resources.SCHEDULES.env] = group
    # the emulator does not assume roles; the ARN only has to look like the one infra/ creates
    env[resources.SCHEDULES.role_env] = f"arn:{aws.partition()}:iam::000000000000:role/{name(stage, 'scheduler')}"
    env[resources.SECRETS_PREFIX_ENV] = f"/siyu/{stage}/brands"
    env[resources.CODES_BUCKET_ENV] = _create_bucket(name(stage, "codes"))
    return env


def _create_bucket(bucket: str) -> str:
    s3 = aws.client("s3")
    try:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": aws.region()})
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        pass
    return bucket
