"""The siyu stack: everything in chalicelib/resources.py, the Chalice API, the workers, alarms.

Partition- and region-agnostic: every ARN comes from CDK tokens (Stack.partition/region/account),
so the same synth deploys to cn-north-1 / cn-northwest-1 (aws-cn), Hong Kong, or anywhere else.
Synth needs no AWS account, no network and no Docker: the API's code is packaged by Chalice from a
staging copy without requirements, and the pinned runtime dependencies ship as one layer built by
`make layer` (infra/build_layer.sh).

What a deployment may choose comes from CDK context values (`-c name=value`), see `Options`:
the API endpoint type (REGIONAL: the only public kind China offers), the fixed egress to WeChat
(VPC + NAT gateways with Elastic IPs, on by default), who the alarms notify, log retention and
an optional custom domain for the API (an ICP-filed one in China).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import (aws_s3 as s3, aws_apigateway as apigateway, aws_cloudwatch as cloudwatch,
                     aws_cloudwatch_actions as cw_actions, aws_dynamodb as dynamodb, aws_ec2 as ec2,
                     aws_events as events, aws_iam as iam, aws_lambda as lambda_,
                     aws_lambda_event_sources as sources, aws_logs as logs, aws_scheduler as scheduler,
                     aws_sns as sns, aws_sns_subscriptions as subscriptions, aws_sqs as sqs)
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
DEFAULT_OUTDIR = ROOT / "infra" / "cdk.out"  # where `make synth` leaves the template (infra/README.md)
API_STAGE = "api"                           # the API Gateway stage: URLs end in /api/ (without a custom domain)

# Queue and stream consumers whose code calls WeChat (the API always does): they sit behind the fixed
# egress. The planner only pages audiences and the outbox only publishes to AWS, so they stay out of
# the VPC (no ENI, no NAT on their path). tests/integration/test_infra.py checks this against what
# each handler imports.
WECHAT_CALLERS = frozenset({"followups", "send", "guidetasks"})

# The AWS services the functions in the VPC call, reached through interface endpoints so that only
# WeChat traffic crosses the NAT gateways. DynamoDB has a (free) gateway endpoint besides. Not here:
# CloudWatch Logs and EMF metrics (Lambda ships logs itself), KMS (SSM decrypts SecureStrings on its
# side), X-Ray (a few KB of trace data; through NAT it costs less than an endpoint's hourly fee).
# `-c interface_endpoints=sqs,ssm` drops one a region lacks: its calls then take the NAT instead.
INTERFACE_ENDPOINTS = {
    "sqs": ec2.InterfaceVpcEndpointAwsService.SQS,
    "ssm": ec2.InterfaceVpcEndpointAwsService.SSM,
    "events": ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE,
    "scheduler": ec2.InterfaceVpcEndpointAwsService("scheduler"),
    "xray": ec2.InterfaceVpcEndpointAwsService.XRAY,
}
DEFAULT_INTERFACE_ENDPOINTS = ("sqs", "ssm", "events", "scheduler")
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653)     # what CloudWatch Logs accepts

# Alarm thresholds. A Lambda error or throttle is never expected (SQS partial failures are not
# errors); a 5xx is a bug, so 1% of API requests over 5 minutes is already an incident.
ALARM_PERIOD = cdk.Duration.minutes(5)
API_5XX_RATE = 0.01
STREAM_ITERATOR_AGE_MS = 5 * 60 * 1000
CODE_QUOTA_ALARM_PERCENT = 80                # chalicelib.domain.codes.ALARM_SHARE
CONFIG_ERROR_METRIC = "WeChatConfigError"   # emitted on WeChat 40164 / 60020: egress IP not whitelisted


def gateway_responses() -> dict:
    """API Gateway's own answers (no route, throttled, integration timeout...) in siyu's error shape.

    Every body is a fixed string: API Gateway's default MISSING_AUTHENTICATION_TOKEN message for a
    request carrying an Authorization header quotes that header, and `$context.error.message` /
    `messageString` carry that text, so no template may use them (nor any request parameter).
    An unknown path and an unknown method on a known path are the same thing to API Gateway
    (MISSING_AUTHENTICATION_TOKEN); siyu has no IAM-signed routes, so the signature types can only
    mean that too."""
    def response(status: int | None, code: str, message: str, **headers: str) -> dict:
        out = {"responseTemplates": {"application/json": json.dumps({"error": {"code": code, "message": message}})},
               "responseParameters": {f"gatewayresponse.header.{name.replace('_', '-')}": f"'{value}'"
                                      for name, value in {"Cache_Control": "no-store", **headers}.items()}}
        if status is not None:
            out["statusCode"] = str(status)
        return out

    no_route = response(404, "not_found", "no such route: check the method and the path")
    return {
        "MISSING_AUTHENTICATION_TOKEN": no_route,
        "RESOURCE_NOT_FOUND": no_route,
        "INVALID_SIGNATURE": no_route,
        "EXPIRED_TOKEN": no_route,
        "UNSUPPORTED_MEDIA_TYPE": response(415, "unsupported_media_type",
                                           "this Content-Type is not accepted here"),
        "BAD_REQUEST_BODY": response(400, "bad_request", "the request body is not acceptable"),
        "BAD_REQUEST_PARAMETERS": response(400, "bad_request", "the request parameters are not acceptable"),
        "REQUEST_TOO_LARGE": response(413, "payload_too_large", "the request is too large"),
        "THROTTLED": response(429, "too_many_requests", "too many requests; retry shortly", Retry_After="1"),
        "QUOTA_EXCEEDED": response(429, "too_many_requests", "too many requests; retry later", Retry_After="60"),
        "WAF_FILTERED": response(403, "forbidden", "the request was refused"),
        "ACCESS_DENIED": response(403, "forbidden", "the request was refused"),
        # the outcome of a request that timed out or failed in flight is unknown: say how to retry safely
        "INTEGRATION_TIMEOUT": response(504, "timeout", "siyu did not answer in time; the request may have been "
                                                        "applied: retry with the same Idempotency-Key"),
        "DEFAULT_4XX": response(None, "bad_request", "the request was refused by the API gateway"),
        "DEFAULT_5XX": response(None, "unavailable", "siyu could not answer; retry shortly (with the same "
                                                     "Idempotency-Key where the route takes one)", Retry_After="5"),
    }


def _flag(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise SystemExit(f"-c {name}={value}: expected true or false")


def _int(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SystemExit(f"-c {name}={value}: expected a whole number") from None


def _names(value) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(item.strip() for item in items if str(item).strip())


@dataclass(frozen=True)
class Options:
    """What a deployment chooses, from CDK context values (`-c name=value`; see infra/README.md)."""
    endpoint_type: str = "REGIONAL"        # endpoint_type: REGIONAL (China offers no EDGE) or EDGE
    fixed_egress: bool = True              # fixed_egress: WeChat calls leave through NAT gateways with EIPs
    nat_gateways: int = 2                  # nat_gateways: 1 or 2 (one per AZ, one egress IP each)
    eip_allocation_ids: tuple[str, ...] = ()   # eip_allocation_ids: reuse EIPs already whitelisted
    interface_endpoints: tuple[str, ...] = DEFAULT_INTERFACE_ENDPOINTS
    alarm_emails: tuple[str, ...] = ()     # alarm_email: who the alarm topic mails (comma-separated)
    log_retention_days: int = 90           # log_retention_days
    domain_name: str | None = None         # domain_name + certificate_arn: a custom domain for the API
    certificate_arn: str | None = None

    @classmethod
    def from_context(cls, get, region: str) -> "Options":
        """Options from `get(name)` (the app's context), refusing what cannot deploy with a clear message."""
        endpoint_type = str(get("endpoint_type") or cls.endpoint_type).upper()
        if endpoint_type not in ("REGIONAL", "EDGE"):
            raise SystemExit(f"-c endpoint_type={endpoint_type}: REGIONAL or EDGE (WeChat must reach the API, "
                             "so PRIVATE cannot serve)")
        if endpoint_type == "EDGE" and region.startswith("cn-"):
            raise SystemExit(f"-c endpoint_type=EDGE: {region} offers only REGIONAL (and PRIVATE) API endpoints")
        fixed_egress = _flag(get("fixed_egress") if get("fixed_egress") is not None else True, "fixed_egress")
        eips = _names(get("eip_allocation_ids"))
        nat_gateways = _int(get("nat_gateways") or len(eips) or cls.nat_gateways, "nat_gateways")
        if nat_gateways not in (1, 2):
            raise SystemExit(f"-c nat_gateways={nat_gateways}: 1 or 2 (one per availability zone)")
        if eips and len(eips) != nat_gateways:
            raise SystemExit(f"-c eip_allocation_ids: {len(eips)} given for {nat_gateways} NAT gateway(s)")
        endpoints = _names(get("interface_endpoints")) if get("interface_endpoints") is not None \
            else DEFAULT_INTERFACE_ENDPOINTS
        unknown = [e for e in endpoints if e not in INTERFACE_ENDPOINTS]
        if unknown:
            raise SystemExit(f"-c interface_endpoints: unknown {unknown}; known: {sorted(INTERFACE_ENDPOINTS)}")
        emails = _names(get("alarm_email"))
        if any("@" not in e for e in emails):
            raise SystemExit(f"-c alarm_email={','.join(emails)}: e-mail addresses, comma-separated")
        retention = _int(get("log_retention_days") or cls.log_retention_days, "log_retention_days")
        if retention not in LOG_RETENTION_DAYS:
            raise SystemExit(f"-c log_retention_days={retention}: one of {LOG_RETENTION_DAYS}")
        domain, certificate = get("domain_name") or None, get("certificate_arn") or None
        if bool(domain) != bool(certificate):
            raise SystemExit("-c domain_name and -c certificate_arn go together (the certificate, in ACM in this "
                             "region, covers the domain)")
        return cls(endpoint_type=endpoint_type, fixed_egress=fixed_egress, nat_gateways=nat_gateways,
                   eip_allocation_ids=eips, interface_endpoints=endpoints, alarm_emails=emails,
                   log_retention_days=retention, domain_name=domain, certificate_arn=certificate)


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
                 wecom_base_url: str = resources.WECOM_BASE_URL_DEFAULT, options: Options = Options(),
                 **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.stage = stage
        self.options = options
        removal = cdk.RemovalPolicy.DESTROY if stage == "dev" else cdk.RemovalPolicy.RETAIN
        self.removal = removal
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
        self.codes_bucket = self._codes_bucket()

        self.lambda_env = {
            **{spec.env: self.tables[spec.key].table_name for spec in resources.TABLES},
            **{spec.env: self.queues[spec.key].queue_url for spec in resources.QUEUES},
            resources.BUS.env: self.bus.event_bus_name,
            resources.SCHEDULES.env: self.schedule_group.name,
            resources.SECRETS_PREFIX_ENV: secrets_prefix,
            resources.WECHAT_BASE_URL_ENV: wechat_base_url,
            resources.WECOM_BASE_URL_ENV: wecom_base_url,
            resources.CODES_BUCKET_ENV: self.codes_bucket.bucket_name,
            resources.SHOWQRCODE_BASE_URL_ENV: resources.SHOWQRCODE_BASE_URL_DEFAULT,
            "SIYU_STAGE": stage,
            "POWERTOOLS_SERVICE_NAME": "siyu",
            "POWERTOOLS_METRICS_NAMESPACE": "siyu",
        }
        if self.scheduler_role is not None:
            self.lambda_env[resources.SCHEDULES.role_env] = self.scheduler_role.role_arn
            # the schedules' DeadLetterConfig: a fire Scheduler cannot deliver lands beside the plan
            # queue's own dead letters (one alarm, one redrive) instead of being dropped
            self.lambda_env[resources.PLAN_DLQ_ARN_ENV] = self.dlqs[resources.SCHEDULES.target_queue].queue_arn

        self.alarm_topic = sns.Topic(self, "Alarms", display_name=f"siyu {stage} alarms", enforce_ssl=True)
        for email in options.alarm_emails:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(email))
        self._network()

        self.layer = lambda_.LayerVersion(self, "Dependencies", code=lambda_.Code.from_asset(layer_dir),
                                          compatible_runtimes=[RUNTIME], compatible_architectures=[ARCH],
                                          description="siyu runtime dependencies (requirements.txt, pinned)")
        self.workers = {spec.key: self._queue_worker(spec) for spec in resources.QUEUES}
        self.stream_workers = {spec.key: self._stream_worker(spec) for spec in resources.STREAMS}
        self.api = self._api()
        self.api_function_name = self.api.get_resource("APIHandler").ref
        self._stream_filters_first()
        self._grants(secrets_prefix)
        self._log_groups()
        self._alarms()
        self._domain()

        cdk.CfnOutput(self, "ApiUrl", value=cdk.Fn.sub(
            "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api/",
            {"Api": self.api.get_resource("RestAPI").ref}))
        cdk.CfnOutput(self, "EventBusName", value=self.bus.event_bus_name)
        for key, table in self.tables.items():
            cdk.CfnOutput(self, f"{key.title()}TableName", value=table.table_name)
        for key, queue in self.queues.items():
            cdk.CfnOutput(self, f"{key.title()}QueueUrl", value=queue.queue_url)
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn,
                      description="subscribe whoever must hear of an alarm (the alarm_email context value does)")

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

    def _network(self) -> None:
        """The fixed egress: WeChat only answers calls from whitelisted IPs (OA 40164, WeCom 60020), and
        Lambda has no fixed outbound address. The functions that call WeChat run in private subnets
        whose default route is a NAT gateway with an Elastic IP; AWS services are reached through VPC
        endpoints, so the NAT carries (and bills) only the WeChat traffic."""
        self.vpc: ec2.Vpc | None = None
        self.egress_sg: ec2.SecurityGroup | None = None
        options = self.options
        if not options.fixed_egress:
            return
        allocations = list(options.eip_allocation_ids)
        eips = []
        if not allocations:
            for n in range(options.nat_gateways):
                eip = ec2.CfnEIP(self, f"EgressIp{n + 1}", domain="vpc",
                                 tags=[cdk.CfnTag(key="Name", value=f"siyu-{self.stage}-wechat-egress-{n + 1}")])
                # the brand whitelists this address in its WeChat consoles: it outlives the stack
                # (reuse it with -c eip_allocation_ids=...) unless this is the dev stage
                eip.apply_removal_policy(self.removal)
                eips.append(eip)
            allocations = [eip.attr_allocation_id for eip in eips]
        private = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.vpc = ec2.Vpc(
            self, "Network", ip_addresses=ec2.IpAddresses.cidr("10.80.0.0/16"), max_azs=2,
            nat_gateways=options.nat_gateways,
            nat_gateway_provider=ec2.NatProvider.gateway(eip_allocation_ids=allocations),
            subnet_configuration=[
                ec2.SubnetConfiguration(name="egress", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="functions", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS,
                                        cidr_mask=20)],
            gateway_endpoints={"DynamoDb": ec2.GatewayVpcEndpointOptions(
                service=ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets=[private]),
                # printable codes' PNGs (the API in the VPC reads and writes them): free, off the NAT
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3,
                                                    subnets=[private])})
        self.egress_subnets = private
        self.egress_sg = ec2.SecurityGroup(self, "WeChatCallers", vpc=self.vpc, allow_all_outbound=False,
                                           description="siyu functions that call WeChat: HTTPS out, nothing in")
        self.egress_sg.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "WeChat APIs and AWS endpoints")
        endpoint_sg = ec2.SecurityGroup(self, "EndpointAccess", vpc=self.vpc, allow_all_outbound=False,
                                        description="siyu VPC endpoints: HTTPS from the functions only")
        endpoint_sg.add_ingress_rule(self.egress_sg, ec2.Port.tcp(443), "siyu functions")
        for key in options.interface_endpoints:
            self.vpc.add_interface_endpoint(f"{key.title()}Endpoint", service=INTERFACE_ENDPOINTS[key],
                                            subnets=private, security_groups=[endpoint_sg], open=False,
                                            private_dns_enabled=True)
        if eips:
            cdk.CfnOutput(self, "EgressIps", value=cdk.Fn.join(",", [eip.ref for eip in eips]),
                          description="whitelist these in the OA, mini-program and WeCom consoles")
        else:
            cdk.CfnOutput(self, "EgressIpAllocations", value=",".join(allocations),
                          description="the Elastic IPs given by eip_allocation_ids carry the WeChat traffic")

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
        # head-office tasks' schedules fire into the guidetasks queue (their DeadLetterConfig: the plan DLQ)
        also = [self.queues[key].queue_arn for key in resources.SCHEDULE_TARGETS if key in self.queues]
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["sqs:SendMessage"],
            resources=[self.queues[target.key].queue_arn, self.dlqs[target.key].queue_arn, *also]))
        return role

    def _function(self, construct_id: str, handler: str, timeout: int, memory: int,
                  calls_wechat: bool = False) -> lambda_.Function:
        egress = {}
        if calls_wechat and self.vpc is not None:
            egress = {"vpc": self.vpc, "vpc_subnets": self.egress_subnets, "security_groups": [self.egress_sg]}
        return lambda_.Function(
            self, construct_id, runtime=RUNTIME, architecture=ARCH, handler=handler,
            code=lambda_.Code.from_asset(str(ROOT), exclude=WORKER_ASSET_EXCLUDE),
            layers=[self.layer], timeout=cdk.Duration.seconds(timeout), memory_size=memory,
            environment=dict(self.lambda_env), tracing=lambda_.Tracing.ACTIVE, **egress)

    def _queue_worker(self, spec: resources.Queue) -> lambda_.Function:
        fn = self._function(f"{spec.key.title()}Worker", spec.handler, spec.consumer_timeout, spec.consumer_memory,
                            calls_wechat=spec.key in WECHAT_CALLERS)
        fn.add_event_source(sources.SqsEventSource(
            self.queues[spec.key], batch_size=spec.batch_size, report_batch_item_failures=True,
            max_batching_window=cdk.Duration.seconds(spec.max_batching_window) if spec.max_batching_window else None))
        return fn

    def _stream_filters_first(self) -> None:
        """Every function that writes what a stream consumer must see updates after the consumer's
        event source mapping (its filters): a coupon that announces itself (storage.coupons.issue)
        written by new code while the old filter (outbox items only) still stood would never be
        published. The consumer's own code updates before its mapping (the mapping refers to it)."""
        mappings = [child for fn in self.stream_workers.values() for child in fn.node.children
                    if isinstance(child, lambda_.EventSourceMapping)]
        for writer in [*self.workers.values(), self.api]:
            for mapping in mappings:
                writer.node.add_dependency(mapping)

    def _stream_worker(self, spec: resources.Stream) -> lambda_.Function:
        fn = self._function(f"{spec.key.title()}StreamWorker", spec.handler, spec.consumer_timeout,
                            spec.consumer_memory, calls_wechat=spec.key in WECHAT_CALLERS)
        failures = sqs.Queue(self, f"{spec.key.title()}StreamFailures", retention_period=cdk.Duration.days(14),
                             encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True)
        self.dlqs[f"stream-{spec.key}"] = failures
        fn.add_event_source(sources.DynamoEventSource(
            self.tables[spec.table], starting_position=lambda_.StartingPosition.LATEST, batch_size=spec.batch_size,
            retry_attempts=spec.max_retry_attempts, bisect_batch_on_error=True, report_batch_item_failures=True,
            on_failure=sources.SqsDlq(failures),
            filters=[lambda_.FilterCriteria.filter(p) for p in spec.filter_patterns]))
        return fn

    def _api(self):
        from chalice.cdk import Chalice
        staging = _stage_source(Path(tempfile.mkdtemp(prefix="siyu-chalice-")))
        egress = {}
        if self.vpc is not None:
            egress = {"subnet_ids": self.vpc.select_subnets(subnet_group_name="functions").subnet_ids,
                      "security_group_ids": [self.egress_sg.security_group_id]}
        api = Chalice(self, "Api", source_dir=str(staging), stage_config={
            "api_gateway_endpoint_type": self.options.endpoint_type,
            "api_gateway_stage": API_STAGE,
            **egress,
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
        rest_api = api.get_resource("RestAPI")
        # one name per stage, so two stages in an account keep apart in API Gateway's metrics (ApiName)
        rest_api.add_property_override("Name", self.api_name)
        rest_api.add_property_override("DefinitionBody.info.title", self.api_name)
        # in the OpenAPI body (not separate GatewayResponse resources) so that the stage's deployment,
        # whose hash SAM takes from the body, always carries them
        rest_api.add_property_override("DefinitionBody.x-amazon-apigateway-gateway-responses",
                                       gateway_responses())
        if self.vpc is not None:
            # ENIs in the subnets; Chalice adds this itself only to the policies it generates
            api.get_resource("ApiHandlerRole").add_property_override("ManagedPolicyArns", [
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AWSLambdaVPCAccessExecutionRole").managed_policy_arn])
        return api

    @property
    def api_name(self) -> str:
        return f"siyu-{self.stage}"

    # -- permissions ----------------------------------------------------------------------------
    def _codes_bucket(self) -> s3.Bucket:
        """The PNGs of the codes WeChat issued (issue 11): private, encrypted, TLS only; kept with the
        table (a permanent OA code counts against the brand's quota forever, so it is never re-made)."""
        return s3.Bucket(self, "Codes", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
                         block_public_access=s3.BlockPublicAccess.BLOCK_ALL, removal_policy=self.removal,
                         auto_delete_objects=False)

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
        # printable codes: the API stores each code's PNG once and serves it from there
        api_role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            resources=[self.codes_bucket.arn_for_objects("codes/*")]))
        for fn in [*self.workers.values(), *self.stream_workers.values()]:
            main.grant_read_write_data(fn)
            self.bus.grant_put_events_to(fn)
            for queue in self.queues.values():
                queue.grant_send_messages(fn)
            for statement in self._ssm_statements(secrets_prefix, write=False):
                fn.add_to_role_policy(statement)

    def _functions(self) -> dict[str, str]:
        """Every deployed function: a short name for construct ids -> its FunctionName (a token)."""
        found = {"Api": self.api_function_name}
        found.update({f"{k.title()}Worker": fn.function_name for k, fn in self.workers.items()})
        found.update({f"{k.title()}StreamWorker": fn.function_name for k, fn in self.stream_workers.items()})
        return found

    def _log_groups(self) -> None:
        """Each function's log group, created by the stack with a retention period instead of by Lambda
        on first use with none (logs kept, and billed, forever)."""
        workers = {**{f"{k.title()}Worker": fn for k, fn in self.workers.items()},
                   **{f"{k.title()}StreamWorker": fn for k, fn in self.stream_workers.items()}}
        for name, function_name in self._functions().items():
            group = logs.CfnLogGroup(self, f"{name}Logs", retention_in_days=self.options.log_retention_days,
                                     log_group_name=cdk.Fn.join("", ["/aws/lambda/", function_name]))
            group.apply_removal_policy(self.removal)
            # a worker's first invocation must not create the group first (the stack's would then fail)
            for child in workers[name].node.children if name in workers else ():
                if isinstance(child, lambda_.EventSourceMapping):
                    child.node.add_dependency(group)

    def _alarm(self, construct_id: str, metric: cloudwatch.IMetric, threshold: float, description: str,
               comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(self, construct_id, metric=metric, threshold=threshold, evaluation_periods=1,
                                 comparison_operator=comparison,
                                 treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                                 alarm_description=description)
        alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))
        alarm.add_ok_action(cw_actions.SnsAction(self.alarm_topic))
        return alarm

    def _alarms(self) -> None:
        """Every alarm notifies the alarm topic (and back when it clears)."""
        for key, dlq in self.dlqs.items():
            self._alarm(f"{key.title().replace('-', '')}DlqNotEmpty",
                        dlq.metric_approximate_number_of_messages_visible(period=cdk.Duration.minutes(1)), 0,
                        f"messages are dead-lettering from {key}: inspect and redrive",
                        comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD)
        for spec in resources.QUEUES:
            # older than every retry the queue allows: it was neither served nor dead-lettered, so its
            # consumers are behind or stuck (throttled, or no way out to WeChat)
            limit = spec.visibility_timeout * spec.max_receive_count
            self._alarm(f"{spec.key.title()}QueueBacklog",
                        self.queues[spec.key].metric_approximate_age_of_oldest_message(
                            period=ALARM_PERIOD, statistic="Maximum"), limit,
                        f"the oldest {spec.key} message is older than {limit} s: its consumer is not keeping up")
        for name, function_name in self._functions().items():
            for metric, meaning in (("Errors", "failed (an uncaught exception or a timeout)"),
                                    ("Throttles", "was throttled: raise its concurrency or the account's")):
                self._alarm(f"{name}{metric}", cloudwatch.Metric(
                    namespace="AWS/Lambda", metric_name=metric, dimensions_map={"FunctionName": function_name},
                    statistic="Sum", period=ALARM_PERIOD), 1, f"siyu {name} {meaning}")
        for key, fn in self.stream_workers.items():
            self._alarm(f"{key.title()}StreamIteratorAge", fn.metric("IteratorAge", statistic="Maximum",
                                                                     period=ALARM_PERIOD),
                        STREAM_ITERATOR_AGE_MS, f"the {key} stream consumer is more than 5 minutes behind",
                        comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD)
        self._alarm("Api5xxRate", cloudwatch.Metric(
            namespace="AWS/ApiGateway", metric_name="5XXError",
            dimensions_map={"ApiName": self.api_name, "Stage": API_STAGE}, statistic="Average",
            period=ALARM_PERIOD), API_5XX_RATE,
            f"more than {API_5XX_RATE:.0%} of API requests answered 5xx",
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD)
        # Powertools metrics carry the service dimension (POWERTOOLS_SERVICE_NAME)
        self._alarm("WeChatConfigErrors", cloudwatch.Metric(
            namespace=self.lambda_env["POWERTOOLS_METRICS_NAMESPACE"], metric_name=CONFIG_ERROR_METRIC,
            dimensions_map={"service": self.lambda_env["POWERTOOLS_SERVICE_NAME"]}, statistic="Sum",
            period=ALARM_PERIOD), 1,
            "WeChat refused a call for configuration (40164 IP not whitelisted, 60020 not a trusted IP): "
            "whitelist the EgressIps output in the brand's OA / mini-program / WeCom console")
        for app in ("oa", "wecom"):
            # the API reports the share of a brand's WeChat code quota in use with each code it makes
            self._alarm(f"{app.title()}CodeQuota", cloudwatch.Metric(
                namespace=self.lambda_env["POWERTOOLS_METRICS_NAMESPACE"], metric_name=f"{app.title()}CodeQuotaUsedPercent",
                dimensions_map={"service": self.lambda_env["POWERTOOLS_SERVICE_NAME"]}, statistic="Maximum",
                period=ALARM_PERIOD), CODE_QUOTA_ALARM_PERCENT,
                f"a brand has used {CODE_QUOTA_ALARM_PERCENT}% of its {app} code quota: reuse channel codes, "
                "or delete WeCom contact ways no longer printed")

    def _domain(self) -> None:
        """The optional custom domain. In China, mini-programs only call ICP-filed HTTPS domains and the
        execute-api host can never be filed, so a China deployment needs one (infra/README.md)."""
        options = self.options
        if not options.domain_name:
            return
        regional = options.endpoint_type == "REGIONAL"
        domain = apigateway.CfnDomainName(
            self, "ApiDomain", domain_name=options.domain_name, security_policy="TLS_1_2",
            endpoint_configuration=apigateway.CfnDomainName.EndpointConfigurationProperty(
                types=[options.endpoint_type]),
            regional_certificate_arn=options.certificate_arn if regional else None,
            certificate_arn=None if regional else options.certificate_arn)
        # `RestAPI.Stage` is the stage SAM generates: referencing it orders the mapping after it
        mapping = apigateway.CfnBasePathMapping(self, "ApiDomainMapping", domain_name=domain.ref,
                                                rest_api_id=self.api.get_resource("RestAPI").ref,
                                                stage=cdk.Fn.ref("RestAPI.Stage"))
        cdk.Validations.of(mapping).acknowledge(cdk.Acknowledgment(
            id="CloudFormation-Validate::F1020",
            reason="RestAPI.Stage is resolved by the Serverless transform (SAM's generated stage)"))
        cdk.CfnOutput(self, "ApiCustomUrl", value=f"https://{options.domain_name}/")
        cdk.CfnOutput(self, "ApiDomainTarget",
                      value=domain.attr_regional_domain_name if regional else domain.attr_distribution_domain_name,
                      description=f"point {options.domain_name} here (DNS CNAME)")


def synth(outdir: str | None = None, context: dict | None = None) -> cdk.App:
    """Synthesize the stack into `outdir`: the CDK CLI's (CDK_OUTDIR) under `cdk synth|deploy`,
    else infra/cdk.out. `context` adds to what the CLI passes (CDK_CONTEXT_JSON, read by cdk.App)."""
    outdir = outdir or os.environ.get("CDK_OUTDIR") or str(DEFAULT_OUTDIR)
    app = cdk.App(outdir=outdir, context=context or {})
    stage = app.node.try_get_context("stage") or "dev"
    # Chalice computes service principals for the target region while packaging (they differ in
    # aws-cn), so the region is chosen at synth: -c region=cn-northwest-1. No account is needed.
    region = (app.node.try_get_context("region") or os.environ.get("CDK_DEFAULT_REGION")
              or os.environ.get("AWS_DEFAULT_REGION") or "cn-north-1")
    os.environ["AWS_DEFAULT_REGION"] = region
    layer_dir = app.node.try_get_context("layer_dir") or str(ROOT / "build" / "layer")
    if not os.path.isdir(layer_dir):
        raise SystemExit(f"no dependency layer at {layer_dir}: run `make layer` first")
    options = Options.from_context(app.node.try_get_context, region)
    stack = SiyuStack(app, f"siyu-{stage}", stage=stage, layer_dir=layer_dir, env=cdk.Environment(region=region),
                      wechat_base_url=app.node.try_get_context("wechat_base_url") or resources.WECHAT_BASE_URL_DEFAULT,
                      wecom_base_url=app.node.try_get_context("wecom_base_url") or resources.WECOM_BASE_URL_DEFAULT,
                      options=options)
    app.synth()
    print(f"synthesized {stack.stack_name} ({region}) -> {os.path.join(outdir, stack.template_file)}", file=sys.stderr)
    return app
