"""Write the trimmed botocore service models siyu ships in chalicelib/botodata/.

botocore parses a service's whole model when a client is created; SSM's is ~800 KB of JSON, about
40 ms of every cold start, for the two operations siyu calls, and DynamoDB's ~600 KB for the dozen
PynamoDB uses. The trimmed model keeps exactly those
operations and the shapes they reach, without documentation. The same goes for endpoints.json, kept with
every partition but only the services siyu calls. Regenerate after bumping botocore:

    .venv/bin/python -m siyu_dev.trim_botocore_model
"""
from __future__ import annotations

import json
from pathlib import Path

import botocore.loaders

OUT = Path(__file__).resolve().parents[1] / "chalicelib" / "botodata"
KEEP = {
    "ssm": ("GetParameter", "PutParameter", "DeleteParameter"),
    # what PynamoDB and siyu call at run time, plus what the local stack and tests call on the same
    # session (table creation, TTL, stream lookup, scans)
    "dynamodb": ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
                 "BatchWriteItem", "TransactWriteItems", "TransactGetItems", "DescribeTable", "CreateTable",
                 "UpdateTimeToLive", "DescribeTimeToLive"),
}


def _undocumented(value):
    if isinstance(value, dict):
        return {k: _undocumented(v) for k, v in value.items() if k not in ("documentation", "documentationUrl")}
    if isinstance(value, list):
        return [_undocumented(v) for v in value]
    return value


def trimmed(service: str, operations: tuple[str, ...]) -> tuple[str, dict]:
    """(api version, model) with only `operations` and the shapes they reach."""
    loader = botocore.loaders.Loader()
    version = loader.determine_latest_version(service, "service-2")
    model = loader.load_service_model(service, "service-2", version)
    shapes, needed = model["shapes"], set()

    def reach(name: str) -> None:
        if name in needed:
            return
        needed.add(name)
        shape = shapes[name]
        for ref in ("member", "key", "value"):
            if ref in shape:
                reach(shape[ref]["shape"])
        for member in shape.get("members", {}).values():
            reach(member["shape"])
    ops = {name: model["operations"][name] for name in operations}
    for op in ops.values():
        for ref in ("input", "output"):
            if ref in op:
                reach(op[ref]["shape"])
        for error in op.get("errors", []):
            reach(error["shape"])
    return version, _undocumented({**model, "operations": ops, "shapes": {k: shapes[k] for k in sorted(needed)}})


# Endpoint data: botocore loads endpoints.json (~1.2 MB, every service in every partition) into each
# new session to resolve a client's endpoint; siyu's clients need the partitions and six services.
ENDPOINT_SERVICES = ("dynamodb", "streams.dynamodb", "ssm", "sqs", "events", "scheduler")


def trimmed_endpoints(services: tuple[str, ...]) -> dict:
    """endpoints.json with every partition (regions, defaults, DNS suffixes) but only `services`."""
    data = botocore.loaders.Loader().load_data("endpoints")
    return {**data, "partitions": [{**p, "services": {k: v for k, v in p["services"].items() if k in services}}
                                   for p in data["partitions"]]}


def main() -> None:
    target = OUT / "endpoints.json"
    target.write_text(json.dumps(trimmed_endpoints(ENDPOINT_SERVICES), separators=(",", ":"), sort_keys=True))
    print(f"{target.relative_to(OUT.parent.parent)}: {len(ENDPOINT_SERVICES)} services, {target.stat().st_size} bytes")
    for service, operations in KEEP.items():
        version, model = trimmed(service, operations)
        target = OUT / service / version / "service-2.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(model, separators=(",", ":"), sort_keys=True))
        print(f"{target.relative_to(OUT.parent.parent)}: {len(operations)} operations, {target.stat().st_size} bytes")


if __name__ == "__main__":
    main()
