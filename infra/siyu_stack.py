"""The siyu stack: everything in chalicelib/resources.py, the Chalice API, the workers, alarms.

Partition- and region-agnostic: every ARN comes from CDK tokens (Stack.partition/region/account),
so the same synth deploys to cn-north-1 / cn-northwest-1 (aws-cn), Hong Kong, or anywhere else.
Synth needs no AWS account, no network and no Docker: the API's code is packaged by Chalice from a
staging copy without requirements, and the pinned runtime dependencies ship as one layer built by
`make layer` (infra/build_layer.sh).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import (aws_cloudwatch as cloudwatch, aws_dynamodb as dynamodb, aws_events as events, aws_iam as iam,
                     aws_lambda as lambda_, aws_lambda_event_sources as sources, aws_scheduler as scheduler,
                     aws_sqs as sqs)
from constructs import Construct

from chalicelib import resources

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = lambda_.Runtime.PYTHON_3_11
ARCH = lambda_.Architecture.ARM_64          # Graviton: ~20% cheaper per GB-second than x86_64
# Scheduler's principal is the same in every partition, aws-cn included (it is also the value of
# iam:PassedToService for CreateSchedule there).
SCHEDULER_SERVICE = "scheduler.amazonaws.com"
WORKER_ASSET_EXCLUDE = ["*", "!handlers", "!handlers/**", "!chalicelib", "!chalicelib/**", "**/__pycache__",
                        "**/*.pyc"]


def _stage_source(target: Path) -> Path:
    """A copy of the Chalice project without requirements.txt, so `chalice package` downloads nothing."""
    shutil.copy2(ROOT / "app.py", target / "app.py")
    shutil.copytree(ROOT / "chalicelib", target / "chalicelib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(ROOT / ".chalice", target / ".chalice", ignore=shutil.ignore_patterns("deployments", "venv"))
    (target / ".chalice" / "base-policy.json").write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": "*"},
        {"Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Resource": "*"}]}))
    return target


class SiyuStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, stage: str, layer_dir: str,
                 wechat_base_url: str = resources.WECHAT_BASE_URL_DEFAULT,
                 wecom_base_url: str = resources.WECOM_BASE_URL_DEFAULT, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.stage = stage
        removal = cdk.RemovalPolicy.DESTROY if stage == "dev" else cdk.RemovalPolicy.RETAIN
        secrets_prefix = f"/siyu/{stage}/brands"

        self.tables = {spec.key: self._table(spec, removal) for spec in resources.TABLES}
        self.queues: dict[str, sqs.Queue] = {}
        self.dlqs: dict[str, sqs.Queue] = {}
        for spec in resources.QUEUES:
            self.dlqs[spec.key] = sqs.Queue(self, f"{spec.key.title()}Dlq", retention_period=cdk.Duration.days(14),
                                            encryption=sqs.QueueEncryption.SQS_MANAGED,
                                            enforce_ssl=True)
            self.queues[spec.key] = sqs.Queue(
                self, f"{spec.key.title()}Queue", visibility_timeout=cdk.Duration.seconds(spec.visibility_timeout),
                encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlqs[spec.key],
                                                      max_receive_count=spec.max_receive_count))
        self.bus = events.EventBus(self, "Bus", event_bus_name=f"siyu-{stage}")
        self.schedule_group = scheduler.CfnScheduleGroup(self, "Schedules", name=f"siyu-{stage}")
        self.scheduler_role = self._scheduler_role()

        self.lambda_env = {
            **{spec.env: self.tables[spec.key].table_name for spec in resources.TABLES},
            **{spec.env: self.queues[spec.key].queue_url for spec in resources.QUEUES},
            resources.BUS.env: self.bus.event_bus_name,
            resources.SCHEDULES.env: self.schedule_group.name,
            resources.SECRETS_PREFIX_ENV: secrets_prefix,
            resources.WECHAT_BASE_URL_ENV: wechat_base_url,
            resources.WECOM_BASE_URL_ENV: wecom_base_url,
            "SIYU_STAGE": stage,
            "POWERTOOLS_SERVICE_NAME": "siyu",
            "POWERTOOLS_METRICS_NAMESPACE": "siyu",
        }
        if self.scheduler_role is not None:
            self.lambda_env[resources.SCHEDULES.role_env] = self.scheduler_role.role_arn
            # the schedules' DeadLetterConfig: a fire Scheduler cannot deliver lands beside the plan
            # queue's own dead letters (one alarm, one redrive) instead of being dropped
            self.lambda_env[resources.PLAN_DLQ_ARN_ENV] = self.dlqs[resources.SCHEDULES.target_queue].queue_arn

        self.layer = lambda_.LayerVersion(self, "Dependencies", code=lambda_.Code.from_asset(layer_dir),
                                          compatible_runtimes=[RUNTIME], compatible_architectures=[ARCH],
                                          description="siyu runtime dependencies (requirements.txt, pinned)")
        self.workers = {spec.key: self._queue_worker(spec) for spec in resources.QUEUES}
        self.stream_workers = {spec.key: self._stream_worker(spec) for spec in resources.STREAMS}
        self.api = self._api()
        self._grants(secrets_prefix)
        self._alarms()

        cdk.CfnOutput(self, "ApiUrl", value=cdk.Fn.sub(
            "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api/",
            {"Api": self.api.get_resource("RestAPI").ref}))
        cdk.CfnOutput(self, "EventBusName", value=self.bus.event_bus_name)
        for key, table in self.tables.items():
            cdk.CfnOutput(self, f"{key.title()}TableName", value=table.table_name)
        for key, queue in self.queues.items():
            cdk.CfnOutput(self, f"{key.title()}QueueUrl", value=queue.queue_url)

    # -- resources ------------------------------------------------------------------------------
    def _table(self, spec: resources.Table, removal: cdk.RemovalPolicy) -> dynamodb.Table:
        table = dynamodb.Table(
            self, f"{spec.key.title()}Table",
            partition_key=dynamodb.Attribute(name=spec.pk, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=spec.sk, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            time_to_live_attribute=spec.ttl_attribute,
            stream=dynamodb.StreamViewType[spec.stream] if spec.stream else None,
            removal_policy=removal,
        )
        for index in spec.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=dynamodb.Attribute(name=index.pk, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=index.sk, type=dynamodb.AttributeType.STRING),
                projection_type=dynamodb.ProjectionType.ALL)
        return table

    def _scheduler_role(self) -> iam.Role | None:
        """The schedules' execution role: assumable by Scheduler only for schedules of this stack's
        group (confused-deputy guard), allowed only sqs:SendMessage to the target queue (the fire)
        and its DLQ (the schedules' DeadLetterConfig). SQS-managed encryption needs no KMS grant."""
        target = next((q for q in resources.QUEUES if q.key == resources.SCHEDULES.target_queue), None)
        if target is None:
            return None
        principal = iam.ServicePrincipal(SCHEDULER_SERVICE).with_conditions({"StringEquals": {
            "aws:SourceAccount": self.account, "aws:SourceArn": self.schedule_group.attr_arn}})
        role = iam.Role(self, "SchedulerRole", assumed_by=principal,
                        description="EventBridge Scheduler delivering campaign fires to the plan queue")
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["sqs:SendMessage"],
            resources=[self.queues[target.key].queue_arn, self.dlqs[target.key].queue_arn]))
        return role

    def _function(self, construct_id: str, handler: str, timeout: int, memory: int) -> lambda_.Function:
        return lambda_.Function(
            self, construct_id, runtime=RUNTIME, architecture=ARCH, handler=handler,
            code=lambda_.Code.from_asset(str(ROOT), exclude=WORKER_ASSET_EXCLUDE),
            layers=[self.layer], timeout=cdk.Duration.seconds(timeout), memory_size=memory,
            environment=dict(self.lambda_env), tracing=lambda_.Tracing.ACTIVE)

    def _queue_worker(self, spec: resources.Queue) -> lambda_.Function:
        fn = self._function(f"{spec.key.title()}Worker", spec.handler, spec.consumer_timeout, spec.consumer_memory)
        fn.add_event_source(sources.SqsEventSource(
            self.queues[spec.key], batch_size=spec.batch_size, report_batch_item_failures=True,
            max_batching_window=cdk.Duration.seconds(spec.max_batching_window) if spec.max_batching_window else None))
        return fn

    def _stream_worker(self, spec: resources.Stream) -> lambda_.Function:
        fn = self._function(f"{spec.key.title()}StreamWorker", spec.handler, spec.consumer_timeout,
                            spec.consumer_memory)
        failures = sqs.Queue(self, f"{spec.key.title()}StreamFailures", retention_period=cdk.Duration.days(14),
                             encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True)
        self.dlqs[f"stream-{spec.key}"] = failures
        fn.add_event_source(sources.DynamoEventSource(
            self.tables[spec.table], starting_position=lambda_.StartingPosition.LATEST, batch_size=spec.batch_size,
            retry_attempts=spec.max_retry_attempts, bisect_batch_on_error=True, report_batch_item_failures=True,
            on_failure=sources.SqsDlq(failures),
            filters=[lambda_.FilterCriteria.filter(spec.filter_pattern)]))
        return fn

    def _api(self):
        from chalice.cdk import Chalice
        staging = _stage_source(Path(tempfile.mkdtemp(prefix="siyu-chalice-")))
        return Chalice(self, "Api", source_dir=str(staging), stage_config={
            "environment_variables": dict(self.lambda_env),
            "lambda_architecture": "arm64",
            "lambda_memory_size": 512,
            "lambda_timeout": 10,
            "layers": [self.layer.layer_version_arn],
            "xray": True,
            # Chalice's generated policy is guesswork from boto3 calls it can see; the grants below
            # are exact. The base policy covers only what every Lambda needs: logs and traces.
            "autogen_policy": False,
            "manage_iam_role": True,
            "iam_policy_file": "base-policy.json",
        })

    # -- permissions ----------------------------------------------------------------------------
    def _ssm_statements(self, prefix: str, write: bool) -> list[iam.PolicyStatement]:
        params = cdk.Arn.format(cdk.ArnComponents(service="ssm", resource="parameter",
                                                  resource_name=f"{prefix.lstrip('/')}/*"), self)
        actions = ["ssm:GetParameter"] + (["ssm:PutParameter", "ssm:DeleteParameter"] if write else [])
        return [
            iam.PolicyStatement(actions=actions, resources=[params]),
            # SecureString parameters use the AWS-managed key; allow it only through SSM.
            iam.PolicyStatement(actions=["kms:Decrypt"] + (["kms:Encrypt"] if write else []),
                                resources=["*"], conditions={
                                    "StringEquals": {"kms:ViaService": f"ssm.{self.region}.{self.url_suffix}"}}),
        ]

    def _grants(self, secrets_prefix: str) -> None:
        main = self.tables["main"]
        api_role = self.api.get_role("ApiHandlerRole")   # chalice names the role per function when a policy file is given
        main.grant_read_write_data(api_role)
        for queue in self.queues.values():
            queue.grant_send_messages(api_role)
        self.bus.grant_put_events_to(api_role)
        for statement in self._ssm_statements(secrets_prefix, write=True):
            api_role.add_to_principal_policy(statement)
        api_role.add_to_principal_policy(iam.PolicyStatement(
            actions=["scheduler:CreateSchedule", "scheduler:DeleteSchedule", "scheduler:GetSchedule"],
            resources=[cdk.Arn.format(cdk.ArnComponents(service="scheduler", resource="schedule",
                                                        resource_name=f"{self.schedule_group.name}/*"), self)]))
        if self.scheduler_role is not None:
            # CreateSchedule passes the execution role; only that role, and only to Scheduler
            api_role.add_to_principal_policy(iam.PolicyStatement(
                actions=["iam:PassRole"], resources=[self.scheduler_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": SCHEDULER_SERVICE}}))
        for fn in [*self.workers.values(), *self.stream_workers.values()]:
            main.grant_read_write_data(fn)
            self.bus.grant_put_events_to(fn)
            for queue in self.queues.values():
                queue.grant_send_messages(fn)
            for statement in self._ssm_statements(secrets_prefix, write=False):
                fn.add_to_role_policy(statement)

    def _alarms(self) -> None:
        for key, dlq in self.dlqs.items():
            cloudwatch.Alarm(self, f"{key.title().replace('-', '')}DlqNotEmpty",
                             metric=dlq.metric_approximate_number_of_messages_visible(period=cdk.Duration.minutes(1)),
                             threshold=0, evaluation_periods=1,
                             comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                             treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                             alarm_description=f"messages are dead-lettering from {key}: inspect and redrive")


def synth(outdir: str | None = None, context: dict | None = None) -> cdk.App:
    context = context or {}
    app = cdk.App(outdir=outdir, context=context)
    stage = app.node.try_get_context("stage") or "dev"
    # Chalice computes service principals for the target region while packaging (they differ in
    # aws-cn), so the region is chosen at synth: -c region=cn-northwest-1. No account is needed.
    region = (app.node.try_get_context("region") or os.environ.get("CDK_DEFAULT_REGION")
              or os.environ.get("AWS_DEFAULT_REGION") or "cn-north-1")
    os.environ["AWS_DEFAULT_REGION"] = region
    layer_dir = app.node.try_get_context("layer_dir") or str(ROOT / "build" / "layer")
    if not os.path.isdir(layer_dir):
        raise SystemExit(f"no dependency layer at {layer_dir}: run `make layer` first")
    SiyuStack(app, f"siyu-{stage}", stage=stage, layer_dir=layer_dir, env=cdk.Environment(region=region),
              wechat_base_url=app.node.try_get_context("wechat_base_url") or resources.WECHAT_BASE_URL_DEFAULT,
              wecom_base_url=app.node.try_get_context("wecom_base_url") or resources.WECOM_BASE_URL_DEFAULT)
    app.synth()
    return app


