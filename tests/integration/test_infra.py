"""The CDK app synthesizes offline (no account, no network, no Docker) into what chalicelib/resources.py says."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib import resources

pytest.importorskip("aws_cdk", reason="the CDK toolchain comes with requirements-test.txt")


# One child interpreter synthesizes every variant the tests read: jsii's start dominates (~20 s), a
# further synth costs a few seconds. Chalice's packager imports the app and copies the stage's
# environment (CDK tokens) into os.environ, which must not leak into the local stack's tests.
SYNTH = r"""
import json, os, runpy, sys
root, work, jobs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path.insert(0, root)
from infra import siyu_stack
report = {"default_outdir": str(siyu_stack.DEFAULT_OUTDIR), "refusals": {}}
for name, context in jobs["direct"].items():
    siyu_stack.synth(os.path.join(work, name), context)
for name, context in jobs["refused"].items():
    try:
        siyu_stack.synth(os.path.join(work, name), context)
    except SystemExit as exc:
        report["refusals"][name] = str(exc)
# as `make synth` and `make deploy` run it: infra/app.py, context from the CDK CLI's environment
# (CDK_CONTEXT_JSON) and from -c arguments, written where neither names an outdir
cli = jobs["app_py"]
os.environ["CDK_CONTEXT_JSON"] = json.dumps(cli["env"])
os.environ.pop("CDK_OUTDIR", None)
siyu_stack.DEFAULT_OUTDIR = siyu_stack.Path(work, "app_py")
sys.argv = ["app.py", *cli["argv"]]
runpy.run_path(os.path.join(root, "infra", "app.py"), run_name="__main__")
json.dump(report, open(os.path.join(work, "report.json"), "w"))
"""

CHINA, GLOBAL, OWN_NETWORK = "cn-north-1", "ap-southeast-1", "cn-northwest-1"
ALARM_EMAILS = ["ops@brand.cn", "oncall@brand.cn"]
REUSED_EIPS = ["eipalloc-0aaaaaaaaaaaaaaaa", "eipalloc-0bbbbbbbbbbbbbbbb"]
DOMAIN, CERTIFICATE = "api.brand.cn", "arn:aws-cn:acm:cn-northwest-1:111122223333:certificate/0000-1111"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    work = tmp_path_factory.mktemp("cdk")
    layer = work / "layer" / "python"
    layer.mkdir(parents=True)
    (layer / "placeholder.txt").write_text("stand-in for `make layer` output")
    root = Path(__file__).resolve().parents[2]
    base = {"stage": "prod", "layer_dir": str(work / "layer")}
    jobs = {
        "direct": {
            # China with every default, and who the alarms mail
            "china": {**base, "region": CHINA, "alarm_email": ",".join(ALARM_EMAILS)},
            # a global region, reusing Elastic IPs a brand has already whitelisted
            "global": {**base, "region": GLOBAL, "eip_allocation_ids": ",".join(REUSED_EIPS)},
        },
        "refused": {
            "edge_in_china": {**base, "region": CHINA, "endpoint_type": "EDGE"},
            "private": {**base, "region": GLOBAL, "endpoint_type": "PRIVATE"},
            "three_nats": {**base, "region": CHINA, "nat_gateways": "3"},
            "eips_vs_nats": {**base, "region": CHINA, "nat_gateways": "2", "eip_allocation_ids": "eipalloc-1"},
            "domain_without_certificate": {**base, "region": CHINA, "domain_name": DOMAIN},
            "odd_retention": {**base, "region": CHINA, "log_retention_days": "100"},
            "odd_flag": {**base, "region": CHINA, "fixed_egress": "maybe"},
            "unknown_endpoint": {**base, "region": CHINA, "interface_endpoints": "sqs,kinesis"},
        },
        # a brand with its own network: no fixed egress, its ICP-filed domain, shorter log retention
        "app_py": {"env": {**base, "region": OWN_NETWORK, "fixed_egress": "false"},
                   "argv": ["-c", "log_retention_days=30", "-c", f"domain_name={DOMAIN}",
                            "-c", f"certificate_arn={CERTIFICATE}"]},
    }
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
           "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1"}
    env.pop("CDK_CONTEXT_JSON", None)
    env.pop("CDK_OUTDIR", None)
    # cwd: chalice's construct writes chalice.out/ into the working directory
    done = subprocess.run([sys.executable, "-c", SYNTH, str(root), str(work), json.dumps(jobs)],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((work / "report.json").read_text())
    return {"china": json.loads((work / "china" / "siyu-prod.template.json").read_text()),
            "global": json.loads((work / "global" / "siyu-prod.template.json").read_text()),
            "own_network": json.loads((work / "app_py" / "siyu-prod.template.json").read_text()),
            "validation": {name: json.loads((work / name / "validation-report.json").read_text())
                           for name in ("china", "global", "app_py")},
            "report": report, "stderr": done.stderr, "work": work, "root": root}


@pytest.fixture(scope="module")
def template(synthesized):
    return synthesized["china"]


@pytest.fixture(scope="module", params=["china", "global"])
def deployed(request, synthesized):
    """The China and the global template, each test run against both."""
    return synthesized[request.param]


def of_type(template, kind):
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def test_tables_match_the_resource_list(template):
    tables = of_type(template, "AWS::DynamoDB::Table")
    assert len(tables) == len(resources.TABLES)
    props = next(iter(tables.values()))["Properties"]
    spec = resources.MAIN
    assert props["KeySchema"] == [{"AttributeName": spec.pk, "KeyType": "HASH"},
                                  {"AttributeName": spec.sk, "KeyType": "RANGE"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": spec.ttl_attribute, "Enabled": True}
    assert props["StreamSpecification"]["StreamViewType"] == spec.stream
    assert [g["IndexName"] for g in props["GlobalSecondaryIndexes"]] == [ix.name for ix in spec.indexes]
    assert all(r["DeletionPolicy"] == "Retain" for r in tables.values())      # prod keeps data


def test_every_queue_has_a_dlq_with_redrive_and_an_alarm(template):
    queues = of_type(template, "AWS::SQS::Queue")
    redriven = [q["Properties"]["RedrivePolicy"] for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert sorted(r["maxReceiveCount"] for r in redriven) == sorted(q.max_receive_count for q in resources.QUEUES)
    alarms = [a for a in of_type(template, "AWS::CloudWatch::Alarm").values()
              if a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"]
    assert len(alarms) == len(resources.QUEUES) + len(resources.STREAMS)      # one per DLQ


def test_every_event_source_reports_batch_item_failures(template):
    mappings = of_type(template, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == len(resources.QUEUES) + len(resources.STREAMS)
    for mapping in mappings.values():
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_stream_consumer_filters_to_the_outbox(template):
    mapping = next(m for m in of_type(template, "AWS::Lambda::EventSourceMapping").values()
                   if "StartingPosition" in m["Properties"])
    patterns = [json.loads(f["Pattern"]) for f in mapping["Properties"]["FilterCriteria"]["Filters"]]
    assert patterns == list(resources.STREAMS[0].filter_patterns) and len(patterns) <= 5
    assert mapping["Properties"]["BisectBatchOnFunctionError"] is True
    assert "OnFailure" in mapping["Properties"]["DestinationConfig"]


def test_every_other_function_updates_after_the_stream_consumers_filters(deployed):
    """A coupon written by new code must meet the new filter (it announces itself): every function but
    the consumer depends on the stream's event source mapping."""
    mapping = next(k for k, m in of_type(deployed, "AWS::Lambda::EventSourceMapping").items()
                   if "StartingPosition" in m["Properties"])
    ours = {"app.app", *(q.handler for q in resources.QUEUES)}
    writers = {k: r for k, r in deployed["Resources"].items()
               if r["Type"] in ("AWS::Lambda::Function", "AWS::Serverless::Function")
               and r["Properties"].get("Handler") in ours}
    assert sorted(r["Properties"]["Handler"] for r in writers.values()) == sorted(ours)
    for key, resource in writers.items():
        assert mapping in resource.get("DependsOn", []), key


def test_workers_run_handlers_from_the_resource_list_on_arm64(template):
    functions = of_type(template, "AWS::Lambda::Function")
    handlers = sorted(f["Properties"]["Handler"] for f in functions.values())
    assert handlers == sorted([q.handler for q in resources.QUEUES] + [s.handler for s in resources.STREAMS])
    assert all(f["Properties"]["Architectures"] == ["arm64"] for f in functions.values())
    assert all(f["Properties"]["Runtime"] == "python3.11" for f in functions.values())


def test_chalice_api_and_bus_and_schedule_group_exist(template):
    assert len(of_type(template, "AWS::Serverless::Api")) == 1
    api = next(iter(of_type(template, "AWS::Serverless::Function").values()))["Properties"]
    assert set(api["Environment"]["Variables"]) >= {resources.MAIN.env, resources.BUS.env,
                                                    resources.SECRETS_PREFIX_ENV, resources.WECHAT_BASE_URL_ENV}
    assert len(api["Layers"]) == 1
    assert len(of_type(template, "AWS::Events::EventBus")) == 1
    assert len(of_type(template, "AWS::Scheduler::ScheduleGroup")) == 1


@pytest.mark.parametrize("name, region", [("china", CHINA), ("global", GLOBAL)])
def test_nothing_names_a_partition_or_a_foreign_region(synthesized, name, region):
    text = json.dumps(synthesized[name])
    assert "arn:aws:" not in text and "arn:aws-cn:" not in text
    for other in ("us-east-1", "us-west-2", "cn-north-1", "cn-northwest-1", "ap-east-1", "ap-southeast-1"):
        if other != region:
            assert other not in text, other


def test_policies_are_least_privilege(template):
    for policy in of_type(template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert "*" not in actions and not any(a.endswith(":*") for a in actions), statement
            if statement.get("Resource") == "*":
                # only actions that AWS cannot scope to a resource (ListStreams, X-Ray, logs) or that a
                # condition fences in (KMS via SSM)
                assert statement.get("Condition") or all(
                    a.startswith(("xray:", "logs:")) or a == "dynamodb:ListStreams" for a in actions), statement


# ---- campaigns: the plan / send queues, the Scheduler role, the schedule API -------------------

def logical_id(template, prefix, kind):
    """The one resource of `kind` whose logical id is `prefix` + CDK's hash suffix."""
    found = [k for k, r in template["Resources"].items()
             if r["Type"] == kind and (k == prefix or (k.startswith(prefix) and len(k) == len(prefix) + 8))]
    assert len(found) == 1, (prefix, kind, found)
    return found[0]


def arn_of(logical):
    return {"Fn::GetAtt": [logical, "Arn"]}


def refers_to(value, logical) -> bool:
    """Whether a template value mentions the resource (Ref / GetAtt, however deeply nested)."""
    if isinstance(value, dict):
        if value.get("Ref") == logical:
            return True
        if "Fn::GetAtt" in value and value["Fn::GetAtt"][0] == logical:
            return True
        return any(refers_to(v, logical) for v in value.values())
    if isinstance(value, list):
        return any(refers_to(v, logical) for v in value)
    return False


def statements_of(template, role):
    """Every statement the role gets from AWS::IAM::Policy resources and its inline policies."""
    out = []
    for policy in of_type(template, "AWS::IAM::Policy").values():
        if refers_to(policy["Properties"].get("Roles", []), role):
            out += policy["Properties"]["PolicyDocument"]["Statement"]
    for inline in template["Resources"][role]["Properties"].get("Policies", []):
        out += inline["PolicyDocument"]["Statement"]
    return out


def as_list(value):
    return value if isinstance(value, list) else [value]


def allows(statements, action, resource=None) -> bool:
    return any(s["Effect"] == "Allow" and action in as_list(s["Action"])
               and (resource is None or resource in as_list(s["Resource"])) for s in statements)


def functions(template):
    """Every deployed function (the Chalice API and the workers): logical id -> properties."""
    return {k: r["Properties"] for k, r in template["Resources"].items()
            if r["Type"] in ("AWS::Lambda::Function", "AWS::Serverless::Function")}


def role_of(function_props):
    role = function_props["Role"]
    return role["Fn::GetAtt"][0]


def worker(template, handler):
    return next(k for k, p in functions(template).items() if p.get("Handler") == handler)


@pytest.mark.parametrize("spec", resources.QUEUES, ids=lambda q: q.key)
def test_queue_has_its_dlq_redrive_alarm_and_consumer(template, spec):
    queue = logical_id(template, f"{spec.key.title()}Queue", "AWS::SQS::Queue")
    dlq = logical_id(template, f"{spec.key.title()}Dlq", "AWS::SQS::Queue")
    props = template["Resources"][queue]["Properties"]
    assert props["RedrivePolicy"] == {"deadLetterTargetArn": arn_of(dlq), "maxReceiveCount": spec.max_receive_count}
    assert props["VisibilityTimeout"] == spec.visibility_timeout
    assert spec.visibility_timeout >= 6 * spec.consumer_timeout          # AWS's advice for Lambda consumers
    assert template["Resources"][dlq]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    alarms = [a["Properties"] for a in of_type(template, "AWS::CloudWatch::Alarm").values()
              if a["Properties"]["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}]]
    assert len(alarms) == 1
    assert alarms[0]["MetricName"] == "ApproximateNumberOfMessagesVisible" and alarms[0]["Threshold"] == 0
    mappings = [m["Properties"] for m in of_type(template, "AWS::Lambda::EventSourceMapping").values()
                if m["Properties"]["EventSourceArn"] == arn_of(queue)]
    assert len(mappings) == 1
    mapping = mappings[0]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == spec.batch_size
    fn = mapping["FunctionName"]["Ref"]
    assert functions(template)[fn]["Handler"] == spec.handler
    assert functions(template)[fn]["Timeout"] == spec.consumer_timeout
    assert functions(template)[fn]["MemorySize"] == spec.consumer_memory


def test_scheduler_role_is_assumable_only_for_this_group_and_sends_only_to_the_plan_queue_and_its_dlq(template):
    role = logical_id(template, "SchedulerRole", "AWS::IAM::Role")
    target = resources.SCHEDULES.target_queue
    queue = logical_id(template, f"{target.title()}Queue", "AWS::SQS::Queue")
    dlq = logical_id(template, f"{target.title()}Dlq", "AWS::SQS::Queue")
    group = logical_id(template, "Schedules", "AWS::Scheduler::ScheduleGroup")
    props = template["Resources"][role]["Properties"]
    assert props["AssumeRolePolicyDocument"]["Statement"] == [{
        "Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"},
        "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"},
                                       "aws:SourceArn": arn_of(group)}}}]
    assert not props.get("ManagedPolicyArns") and not props.get("Policies")
    statements = statements_of(template, role)
    assert [as_list(s["Action"]) for s in statements] == [["sqs:SendMessage"]]
    assert statements[0]["Effect"] == "Allow" and "Condition" not in statements[0]
    others = [arn_of(logical_id(template, f"{key.title()}Queue", "AWS::SQS::Queue"))
              for key in resources.SCHEDULE_TARGETS]
    assert sorted(as_list(statements[0]["Resource"]), key=json.dumps) == sorted([arn_of(queue), arn_of(dlq), *others],
                                                                                key=json.dumps)


def test_api_manages_schedules_in_its_group_and_passes_only_the_scheduler_role(template):
    api = next(k for k, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function")
    api_role = role_of(template["Resources"][api]["Properties"])
    scheduler_role = logical_id(template, "SchedulerRole", "AWS::IAM::Role")
    statements = statements_of(template, api_role)
    schedule_statements = [s for s in statements if any(a.startswith("scheduler:") for a in as_list(s["Action"]))]
    assert {a for s in schedule_statements for a in as_list(s["Action"])} >= {"scheduler:CreateSchedule",
                                                                              "scheduler:DeleteSchedule"}
    for s in schedule_statements:
        for resource in as_list(s["Resource"]):
            parts = resource["Fn::Join"][1]
            assert parts[-1] == ":schedule/siyu-prod/*" and {"Ref": "AWS::Partition"} in parts, resource
    passes = [s for s in statements if "iam:PassRole" in as_list(s["Action"])]
    assert len(passes) == 1
    assert as_list(passes[0]["Resource"]) == [arn_of(scheduler_role)]
    assert passes[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}
    # nobody else may pass a role
    for policy in of_type(template, "AWS::IAM::Policy").values():
        if not refers_to(policy["Properties"]["Roles"], api_role):
            assert not allows(policy["Properties"]["PolicyDocument"]["Statement"], "iam:PassRole")


def test_api_may_write_and_delete_brand_secrets_and_nothing_else_in_ssm(template):
    """Brand creation writes secrets last and deletes them again when that write fails."""
    api = next(k for k, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function")
    ssm = [s for s in statements_of(template, role_of(template["Resources"][api]["Properties"]))
           if any(a.startswith("ssm:") for a in as_list(s["Action"]))]
    assert {a for s in ssm for a in as_list(s["Action"])} == {"ssm:GetParameter", "ssm:PutParameter",
                                                              "ssm:DeleteParameter"}
    for s in ssm:
        for resource in as_list(s["Resource"]):
            assert "siyu/prod/brands/*" in json.dumps(resource), resource


def test_every_function_finds_the_campaign_wiring_in_its_environment(template):
    dlq = logical_id(template, f"{resources.SCHEDULES.target_queue.title()}Dlq", "AWS::SQS::Queue")
    scheduler_role = logical_id(template, "SchedulerRole", "AWS::IAM::Role")
    found = functions(template)
    assert len(found) == len(resources.QUEUES) + len(resources.STREAMS) + 1
    for name, props in found.items():
        env = props["Environment"]["Variables"]
        assert env[resources.PLAN_DLQ_ARN_ENV] == arn_of(dlq), name
        assert env[resources.SCHEDULES.role_env] == arn_of(scheduler_role), name
        assert env[resources.SCHEDULES.env] == "siyu-prod", name
        for spec in resources.QUEUES:
            assert env[spec.env] == {"Ref": logical_id(template, f"{spec.key.title()}Queue", "AWS::SQS::Queue")}


def test_campaign_workers_have_what_their_code_calls(template):
    plan_queue = arn_of(logical_id(template, "PlanQueue", "AWS::SQS::Queue"))
    send_queue = arn_of(logical_id(template, "SendQueue", "AWS::SQS::Queue"))
    table = arn_of(logical_id(template, "MainTable", "AWS::DynamoDB::Table"))
    bus = arn_of(logical_id(template, "Bus", "AWS::Events::EventBus"))
    for handler in (resources.queue("plan").handler, resources.queue("send").handler):
        props = functions(template)[worker(template, handler)]
        statements = statements_of(template, role_of(props))
        # planner: re-queues itself and fans chunks out; sender: defers, re-checks and hands on chunks
        assert allows(statements, "sqs:SendMessage", plan_queue) and allows(statements, "sqs:SendMessage", send_queue)
        for action in ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:PutItem",
                       "dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem"):
            assert allows(statements, action, table), (handler, action)
        assert allows(statements, "events:PutEvents", bus)
        ssm = [s for s in statements if "ssm:GetParameter" in as_list(s["Action"])]
        assert ssm and all("ssm:PutParameter" not in as_list(s["Action"]) for s in ssm)   # workers only read
        assert not allows(statements, "scheduler:CreateSchedule") and not allows(statements, "iam:PassRole")
    # handlers/send.py shortens the retry delay of a chunk with ChangeMessageVisibility on its own queue
    send = statements_of(template, role_of(functions(template)[worker(template, resources.queue("send").handler)]))
    assert allows(send, "sqs:ChangeMessageVisibility", send_queue)


# ---- issue 7 §2: deployable to China, fixed egress to WeChat, alarms that notify ------------------

def properties(template, logical):
    return template["Resources"][logical]["Properties"]


def test_api_endpoint_is_regional_in_china_and_elsewhere(synthesized):
    for name in ("china", "global", "own_network"):
        api = properties(synthesized[name], "RestAPI")
        assert api["EndpointConfiguration"] == "REGIONAL", name
        assert "EDGE" not in json.dumps(synthesized[name]), name


def test_cdk_validation_finds_nothing_in_any_variant(synthesized):
    """CDK's built-in CloudFormation validation (resource schemas, references) runs at every synth
    and only warns: here a finding fails the test."""
    for name, report in synthesized["validation"].items():
        for plugin in report["pluginReports"]:
            assert plugin["conclusion"] == "success" and not plugin["violations"], (name, plugin["violations"])
    assert "Template validation found issues" not in synthesized["stderr"]


def test_options_that_cannot_deploy_are_refused_with_the_reason(synthesized):
    refusals = synthesized["report"]["refusals"]
    assert "cn-north-1 offers only REGIONAL" in refusals["edge_in_china"]
    assert "REGIONAL or EDGE" in refusals["private"]
    assert "nat_gateways=3" in refusals["three_nats"]
    assert "1 given for 2 NAT gateway" in refusals["eips_vs_nats"]
    assert "certificate_arn" in refusals["domain_without_certificate"]
    assert "log_retention_days=100" in refusals["odd_retention"]
    assert "fixed_egress=maybe" in refusals["odd_flag"]
    assert "kinesis" in refusals["unknown_endpoint"]


def test_make_synth_writes_infra_cdk_out_and_says_where(synthesized):
    """infra/app.py (what `make synth` and the CDK CLI run) takes context from the CLI's environment and
    from -c arguments, and without an outdir writes to infra/cdk.out, printing the template's path."""
    assert synthesized["report"]["default_outdir"] == str(synthesized["root"] / "infra" / "cdk.out")
    written = synthesized["work"] / "app_py" / "siyu-prod.template.json"
    assert f"synthesized siyu-prod ({OWN_NETWORK}) -> {written}" in synthesized["stderr"]
    own = synthesized["own_network"]
    assert not of_type(own, "AWS::EC2::VPC")                                   # from CDK_CONTEXT_JSON
    assert {g["Properties"]["RetentionInDays"] for g in of_type(own, "AWS::Logs::LogGroup").values()} == {30}  # -c


@pytest.fixture(scope="module")
def wechat_callers(synthesized) -> set[str]:
    """The deployed entry points (the API's handler is `app.app`) whose code loads the WeChat client.
    One child interpreter imports each in turn, forgetting siyu's own modules in between (the
    third-party ones it keeps are not what is asked)."""
    entries = ["app.app"] + [spec.handler for spec in (*resources.QUEUES, *resources.STREAMS)]
    code = ("import importlib, json, sys\n"
            "found = []\n"
            "for entry in sys.argv[1:]:\n"
            "    for name in [m for m in sys.modules if m.split('.')[0] in ('app', 'handlers', 'chalicelib')]:\n"
            "        del sys.modules[name]\n"
            "    importlib.import_module(entry.rsplit('.', 1)[0])\n"
            "    if 'chalicelib.wechat.client' in sys.modules:\n"
            "        found.append(entry)\n"
            "print(json.dumps(found))\n")
    done = subprocess.run([sys.executable, "-c", code, *entries], cwd=synthesized["root"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def in_vpc(template) -> dict[str, dict]:
    """Handler -> VpcConfig of every function in a VPC."""
    return {p["Handler"]: p["VpcConfig"] for p in functions(template).values() if p.get("VpcConfig")}


def test_exactly_the_functions_that_call_wechat_sit_in_the_vpc(wechat_callers, deployed):
    callers = wechat_callers
    assert callers == {"app.app", resources.queue("followups").handler, resources.queue("send").handler,
                       resources.queue("guidetasks").handler}
    assert set(in_vpc(deployed)) == callers          # the planner and the outbox publisher stay out


def default_route(template, subnet_ref):
    associations = [a["Properties"]["RouteTableId"] for a in
                    of_type(template, "AWS::EC2::SubnetRouteTableAssociation").values()
                    if a["Properties"]["SubnetId"] == subnet_ref]
    assert len(associations) == 1
    routes = [r["Properties"] for r in of_type(template, "AWS::EC2::Route").values()
              if r["Properties"]["RouteTableId"] == associations[0]
              and r["Properties"].get("DestinationCidrBlock") == "0.0.0.0/0"]
    assert len(routes) == 1
    return associations[0], routes[0]


def test_wechat_traffic_leaves_through_nat_gateways_with_elastic_ips(synthesized):
    for name in ("china", "global"):
        template = synthesized[name]
        nats = of_type(template, "AWS::EC2::NatGateway")
        assert len(nats) == 2
        eips = of_type(template, "AWS::EC2::EIP")
        if name == "china":      # created by the stack, outliving it: the brand has whitelisted them
            assert len(eips) == 2 and all(e["DeletionPolicy"] == "Retain" for e in eips.values())
            expected = sorted(({"Fn::GetAtt": [k, "AllocationId"]} for k in eips), key=json.dumps)
            assert template["Outputs"]["EgressIps"]["Value"] == {"Fn::Join": [",", [{"Ref": k} for k in eips]]}
        else:                    # reused: -c eip_allocation_ids=...
            assert not eips
            expected = sorted(REUSED_EIPS)
            assert template["Outputs"]["EgressIpAllocations"]["Value"] == ",".join(REUSED_EIPS)
        assert sorted((n["Properties"]["AllocationId"] for n in nats.values()), key=json.dumps) == expected
        for nat in nats.values():   # each NAT sits in a public subnet that routes to the internet gateway
            _, route = default_route(template, nat["Properties"]["SubnetId"])
            assert "GatewayId" in route
        for handler, vpc_config in in_vpc(template).items():
            assert len(vpc_config["SubnetIds"]) == 2, handler       # two availability zones
            for subnet in vpc_config["SubnetIds"]:
                _, route = default_route(template, subnet)
                assert route["NatGatewayId"]["Ref"] in nats, handler
            [group] = vpc_config["SecurityGroupIds"]
            sg = properties(template, group["Fn::GetAtt"][0])
            assert sg["SecurityGroupEgress"] == [{"CidrIp": "0.0.0.0/0", "Description": "WeChat APIs and AWS endpoints",
                                                  "FromPort": 443, "IpProtocol": "tcp", "ToPort": 443}]
            assert not sg.get("SecurityGroupIngress")
        # every function in the VPC may manage its network interfaces there
        managed = "service-role/AWSLambdaVPCAccessExecutionRole"
        for props in functions(template).values():
            if props.get("VpcConfig"):
                arns = json.dumps(properties(template, role_of(props)).get("ManagedPolicyArns", []))
                assert managed in arns, props["Handler"]


def test_aws_services_are_reached_through_vpc_endpoints(deployed):
    [vpc_config] = {json.dumps(c, sort_keys=True) for c in in_vpc(deployed).values()}   # one network for all
    vpc_config = json.loads(vpc_config)
    route_tables = sorted((default_route(deployed, s)[0] for s in vpc_config["SubnetIds"]), key=json.dumps)
    endpoints = of_type(deployed, "AWS::EC2::VPCEndpoint")

    def service(props):
        name = props["ServiceName"]
        return (name if isinstance(name, str) else name["Fn::Join"][1][-1]).rsplit(".", 1)[-1]

    gateway = {service(e["Properties"]): e["Properties"] for e in endpoints.values()
               if e["Properties"]["VpcEndpointType"] == "Gateway"}
    interface = {service(e["Properties"]): e["Properties"] for e in endpoints.values()
                 if e["Properties"]["VpcEndpointType"] == "Interface"}
    assert set(gateway) == {"dynamodb", "s3"}
    assert sorted(gateway["dynamodb"]["RouteTableIds"], key=json.dumps) == route_tables
    assert set(interface) == {"sqs", "ssm", "events", "scheduler"}
    [function_sg] = vpc_config["SecurityGroupIds"]
    for name, props in interface.items():
        assert props["PrivateDnsEnabled"] is True, name          # the SDK's default hostnames resolve to them
        assert sorted(props["SubnetIds"], key=json.dumps) == sorted(vpc_config["SubnetIds"], key=json.dumps)
        [endpoint_sg] = props["SecurityGroupIds"]
        ingress = [i["Properties"] for i in of_type(deployed, "AWS::EC2::SecurityGroupIngress").values()
                   if i["Properties"]["GroupId"] == endpoint_sg]
        assert ingress == [{"Description": "siyu functions", "FromPort": 443, "GroupId": endpoint_sg,
                            "IpProtocol": "tcp", "SourceSecurityGroupId": function_sg, "ToPort": 443}], name


def test_a_brand_with_its_own_network_gets_no_vpc(synthesized):
    own = synthesized["own_network"]
    assert not [k for k, r in own["Resources"].items() if r["Type"].startswith("AWS::EC2::")]
    assert not in_vpc(own)
    assert "ManagedPolicyArns" not in properties(own, "ApiHandlerRole")
    assert "EgressIps" not in own["Outputs"] and "EgressIpAllocations" not in own["Outputs"]


def alarms(template) -> list[dict]:
    return [a["Properties"] for a in of_type(template, "AWS::CloudWatch::Alarm").values()]


def test_every_alarm_notifies_the_alarm_topic(synthesized, deployed):
    [topic] = of_type(deployed, "AWS::SNS::Topic")
    for alarm in alarms(deployed):
        assert alarm["AlarmActions"] == [{"Ref": topic}], alarm["AlarmDescription"]
        assert alarm["OKActions"] == [{"Ref": topic}], alarm["AlarmDescription"]
    assert deployed["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": topic}
    mails = sorted(s["Properties"]["Endpoint"] for s in of_type(deployed, "AWS::SNS::Subscription").values()
                   if s["Properties"]["Protocol"] == "email" and s["Properties"]["TopicArn"] == {"Ref": topic})
    assert mails == (sorted(ALARM_EMAILS) if deployed is synthesized["china"] else [])


def alarms_on(template, metric, dimensions):
    return [a for a in alarms(template) if a["MetricName"] == metric and a["Dimensions"] == dimensions]


def test_alarms_watch_every_function_queue_the_api_and_wechat_config_errors(deployed):
    for logical, props in functions(deployed).items():
        for metric in ("Errors", "Throttles"):
            [alarm] = alarms_on(deployed, metric, [{"Name": "FunctionName", "Value": {"Ref": logical}}])
            assert (alarm["Namespace"], alarm["Statistic"], alarm["Threshold"]) == ("AWS/Lambda", "Sum", 1), logical
            assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    for spec in resources.QUEUES:
        queue = logical_id(deployed, f"{spec.key.title()}Queue", "AWS::SQS::Queue")
        [alarm] = alarms_on(deployed, "ApproximateAgeOfOldestMessage",
                            [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}])
        assert alarm["Threshold"] == spec.visibility_timeout * spec.max_receive_count
        assert alarm["Statistic"] == "Maximum"
    for spec in resources.STREAMS:
        fn = worker(deployed, spec.handler)
        [alarm] = alarms_on(deployed, "IteratorAge", [{"Name": "FunctionName", "Value": {"Ref": fn}}])
        assert alarm["Statistic"] == "Maximum"
    api = properties(deployed, "RestAPI")
    [alarm] = alarms_on(deployed, "5XXError", [{"Name": "ApiName", "Value": api["Name"]},
                                               {"Name": "Stage", "Value": api["StageName"]}])
    assert api["Name"] == api["DefinitionBody"]["info"]["title"] == "siyu-prod"    # one name per stage
    assert (alarm["Namespace"], alarm["Statistic"], alarm["Threshold"]) == ("AWS/ApiGateway", "Average", 0.01)
    env = next(p for p in functions(deployed).values() if p["Handler"] == "app.app")["Environment"]["Variables"]
    # Powertools' metrics carry the service dimension
    [alarm] = alarms_on(deployed, "WeChatConfigError", [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}])
    assert (alarm["Namespace"], alarm["Statistic"], alarm["Threshold"]) == ("siyu", "Sum", 1)
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "siyu"
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_every_function_logs_to_a_group_with_a_retention_period(synthesized):
    for name, days in (("china", 90), ("global", 90), ("own_network", 30)):
        template = synthesized[name]
        groups = of_type(template, "AWS::Logs::LogGroup")
        assert len(groups) == len(functions(template)), name
        for logical in functions(template):
            [group] = [k for k, g in groups.items()
                       if g["Properties"]["LogGroupName"] == {"Fn::Join": ["", ["/aws/lambda/", {"Ref": logical}]]}]
            assert properties(template, group)["RetentionInDays"] == days
            assert template["Resources"][group]["DeletionPolicy"] == "Retain"       # prod keeps its logs
            # a worker's first invocation must not create its group before the stack does
            for mapping in of_type(template, "AWS::Lambda::EventSourceMapping").values():
                if mapping["Properties"]["FunctionName"] == {"Ref": logical}:
                    assert group in mapping["DependsOn"], logical


# ---- issue 8 §5, as deployed: API Gateway's own answers in siyu's error shape ----------------------

def test_gateway_responses_answer_in_siyus_shape_and_echo_nothing(synthesized):
    for name in ("china", "global", "own_network"):
        responses = properties(synthesized[name], "RestAPI")["DefinitionBody"]["x-amazon-apigateway-gateway-responses"]
        assert set(responses) >= {"DEFAULT_4XX", "DEFAULT_5XX", "MISSING_AUTHENTICATION_TOKEN",
                                  "UNSUPPORTED_MEDIA_TYPE", "BAD_REQUEST_BODY", "REQUEST_TOO_LARGE", "THROTTLED",
                                  "INTEGRATION_TIMEOUT"}
        for kind, response in responses.items():
            # API Gateway's MISSING_AUTHENTICATION_TOKEN message quotes the caller's Authorization header,
            # and $context.error.message(String) carries it: no template may use a variable at all
            text = json.dumps(response)
            assert "$" not in text and "method.request" not in text, kind
            assert set(response["responseTemplates"]) == {"application/json"}
            body = json.loads(response["responseTemplates"]["application/json"])
            assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, kind
            assert response["responseParameters"]["gatewayresponse.header.Cache-Control"] == "'no-store'"
            if "statusCode" in response:
                assert 400 <= int(response["statusCode"]) < 600
        codes = {kind: (r.get("statusCode"), json.loads(r["responseTemplates"]["application/json"])["error"]["code"])
                 for kind, r in responses.items()}
        assert codes["MISSING_AUTHENTICATION_TOKEN"] == ("404", "not_found")      # unknown path or method
        assert codes["UNSUPPORTED_MEDIA_TYPE"] == ("415", "unsupported_media_type")
        assert codes["THROTTLED"] == ("429", "too_many_requests")
        assert codes["DEFAULT_4XX"][0] is None and codes["DEFAULT_5XX"] == (None, "unavailable")


def test_a_custom_domain_maps_to_the_api_stage(synthesized):
    own = synthesized["own_network"]
    [domain] = of_type(own, "AWS::ApiGateway::DomainName")
    assert properties(own, domain) == {"DomainName": DOMAIN, "EndpointConfiguration": {"Types": ["REGIONAL"]},
                                       "RegionalCertificateArn": CERTIFICATE, "SecurityPolicy": "TLS_1_2"}
    [mapping] = of_type(own, "AWS::ApiGateway::BasePathMapping").values()
    # RestAPI.Stage: the stage SAM generates, so the mapping waits for it
    assert mapping["Properties"] == {"DomainName": {"Ref": domain}, "RestApiId": {"Ref": "RestAPI"},
                                     "Stage": {"Ref": "RestAPI.Stage"}}
    assert own["Outputs"]["ApiDomainTarget"]["Value"] == {"Fn::GetAtt": [domain, "RegionalDomainName"]}
    assert own["Outputs"]["ApiCustomUrl"]["Value"] == f"https://{DOMAIN}/"
    for name in ("china", "global"):
        assert not of_type(synthesized[name], "AWS::ApiGateway::DomainName")


# ---- printable codes (issue 11) ------------------------------------------------------------------

def test_codes_bucket_is_private_encrypted_and_only_the_api_writes_its_codes(deployed):
    bucket = logical_id(deployed, "Codes", "AWS::S3::Bucket")
    props = properties(deployed, bucket)
    assert props["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                       "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"}
    api = next(p for p in functions(deployed).values() if p["Handler"] == "app.app")
    env = api["Environment"]["Variables"]
    assert env[resources.CODES_BUCKET_ENV] == {"Ref": bucket}
    assert env[resources.SHOWQRCODE_BASE_URL_ENV] == resources.SHOWQRCODE_BASE_URL_DEFAULT
    statements = statements_of(deployed, role_of(api))
    objects = [s for s in statements if refers_to(s["Resource"], bucket)]
    assert [sorted(as_list(s["Action"])) for s in objects] == [["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]]
    assert "codes/*" in json.dumps(objects[0]["Resource"])
    for logical, fn in functions(deployed).items():
        if fn["Handler"] != "app.app":
            assert not any(refers_to(s["Resource"], bucket) for s in statements_of(deployed, role_of(fn))), logical


def test_code_quota_alarms_fire_at_80_percent(deployed):
    env = next(p for p in functions(deployed).values() if p["Handler"] == "app.app")["Environment"]["Variables"]
    for app in ("Oa", "Wecom"):
        [alarm] = alarms_on(deployed, f"{app}CodeQuotaUsedPercent",
                            [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}])
        assert (alarm["Namespace"], alarm["Statistic"], alarm["Threshold"]) == ("siyu", "Maximum", 80)
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
