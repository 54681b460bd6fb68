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
