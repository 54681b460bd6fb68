#!/usr/bin/env bash
# The Lambda layer with siyu's pinned runtime dependencies, as Lambda (Python 3.11, arm64) needs them:
# manylinux wheels only, so nothing is compiled here and the result matches the Lambda runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/layer
rm -rf "$out" && mkdir -p "$out/python"
.venv/bin/pip install -q --disable-pip-version-check --platform manylinux2014_aarch64 --only-binary=:all: \
  --python-version 3.11 --implementation cp --target "$out/python" -r requirements.txt
# boto3/botocore come with the Lambda runtime; drop them if a dependency pulled them in.
rm -rf "$out"/python/boto3* "$out"/python/botocore* "$out"/python/s3transfer*
du -sh "$out"
