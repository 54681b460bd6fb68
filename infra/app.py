#!/usr/bin/env python3
"""CDK entry point, run by the CDK CLI (`cdk synth|deploy -c stage=prod ...`, see cdk.json) or directly
(`make synth`: `python app.py -c stage=prod -c region=cn-north-1`, written to infra/cdk.out).

Run directly, it reads cdk.json's context as the CLI would, then the `-c name=value` arguments."""
import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.siyu_stack import synth  # noqa: E402


def context_from(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-c", "--context", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    # Under the CDK CLI, its merged context (cdk.json, cdk.context.json, -c) arrives in CDK_CONTEXT_JSON;
    # passing it on explicitly keeps the app independent of what the jsii process inherited.
    if "CDK_CONTEXT_JSON" in os.environ:
        context = json.loads(os.environ["CDK_CONTEXT_JSON"])
    else:
        context = json.loads((Path(__file__).parent / "cdk.json").read_text()).get("context", {})
    for item in args.context:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"-c {item}: expected NAME=VALUE")
        context[name] = value
    return context


if __name__ == "__main__":
    synth(context=context_from(sys.argv[1:]))
