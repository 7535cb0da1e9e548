#!/usr/bin/env bash
# Install fmkit (all extras + test tools) into .venv and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first, pinned: where a CPU wheel of 2.13.0 lies on disk pip takes it; an unpinned
# torch would pull a multi-GB CUDA build
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
# versions known to work together (pip's resolver otherwise backtracks through s3fs,
# aiobotocore and botocore); regenerate with `pip freeze` when upgrading
.venv/bin/python -m pip install -q --disable-pip-version-check -c scripts/constraints.txt \
  -e ".[all,test]"
exec .venv/bin/python -m pytest -q "$@"
