#!/usr/bin/env python3
"""CDK entry point: `cdk synth|deploy -c stage=prod [-c layer_dir=build/layer] [-c wechat_base_url=...]`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.siyu_stack import synth  # noqa: E402

if __name__ == "__main__":
    synth()
