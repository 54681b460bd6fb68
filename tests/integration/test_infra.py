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


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Synthesize in a child process: Chalice's packager imports the app and copies the stage's
    environment (CDK tokens) into os.environ, which must not leak into the local stack's tests."""
    work = tmp_path_factory.mktemp("cdk")
    layer = work / "layer" / "python"
    layer.mkdir(parents=True)
    (layer / "placeholder.txt").write_text("stand-in for `make layer` output")
    root = Path(__file__).resolve().parents[2]
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from infra.siyu_stack import synth; "
            "synth(sys.argv[2], {'stage': 'prod', 'layer_dir': sys.argv[3], 'region': 'cn-northwest-1'})")
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
           "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1"}
    # cwd: chalice's construct writes chalice.out/ into the working directory
    done = subprocess.run([sys.executable, "-c", code, str(root), str(work / "out"), str(work / "layer")],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((work / "out" / "siyu-prod.template.json").read_text())


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
    alarms = of_type(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) == len(resources.QUEUES) + len(resources.STREAMS)
    assert all(a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible" for a in alarms.values())


def test_every_event_source_reports_batch_item_failures(template):
    mappings = of_type(template, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == len(resources.QUEUES) + len(resources.STREAMS)
    for mapping in mappings.values():
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_stream_consumer_filters_to_the_outbox(template):
    mapping = next(m for m in of_type(template, "AWS::Lambda::EventSourceMapping").values()
                   if "StartingPosition" in m["Properties"])
    pattern = json.loads(mapping["Properties"]["FilterCriteria"]["Filters"][0]["Pattern"])
    assert pattern == resources.STREAMS[0].filter_pattern
    assert mapping["Properties"]["BisectBatchOnFunctionError"] is True
    assert "OnFailure" in mapping["Properties"]["DestinationConfig"]


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


def test_nothing_names_a_partition_or_a_foreign_region(template):
    text = json.dumps(template)
    assert "arn:aws:" not in text and "arn:aws-cn:" not in text
    for region in ("us-east-1", "us-west-2", "cn-north-1", "ap-east-1"):
        assert region not in text


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
    assert sorted(as_list(statements[0]["Resource"]), key=json.dumps) == sorted([arn_of(queue), arn_of(dlq)],
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
