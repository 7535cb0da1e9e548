#!/usr/bin/env bash
# The main job, end to end on MovieLens 100K: install fmkit, prepare the data, train a binary
# classifier with fmkit's recommended settings, evaluate it, start a local endpoint, ask it for
# the top-10 movies of user 196, and stop the endpoint.
#
# MovieLens comes from $FMKIT_DATA_DIR (a folder or zip) when set, else from
# ../shared/data/ml-100k when that folder exists (the project's machines), else it is
# downloaded from GroupLens (checksum verified).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check -c scripts/constraints.txt \
  -e ".[all]"
FM=.venv/bin/fmkit
RUN=${FMKIT_RUN_DIR:-runs/movielens}
USER_ID=${FMKIT_USER:-196}
if [ -z "${FMKIT_DATA_DIR:-}" ] && [ -d ../shared/data/ml-100k ]; then
  export FMKIT_DATA_DIR=../shared/data/ml-100k
fi

echo "== prepare MovieLens 100K (ua split, label = rating >= 4)"
$FM prepare movielens --split ua --target binary --output "$RUN/data"

echo "== train (fmkit's recommended settings)"
$FM train --train "$RUN/data/train" --test "$RUN/data/test" --model-dir "$RUN/model" \
    --predictor-type binary_classifier --no-progress 2> "$RUN/train.log"
grep -E '^epoch|#test_score' "$RUN/train.log" || true

echo "== evaluate"
$FM evaluate --model-dir "$RUN/model" --test "$RUN/data/test" --ranking-k 10

echo "== deploy an endpoint"
$FM endpoints delete movielens >/dev/null 2>&1 || true
$FM deploy --model-dir "$RUN/model" --name movielens
trap '$FM endpoints delete movielens >/dev/null 2>&1 || true' EXIT

echo "== top-10 recommendations for user $USER_ID (POST /recommend)"
.venv/bin/python - "$USER_ID" <<'PY'
import json, subprocess, sys, urllib.request
endpoints = json.loads(subprocess.check_output([".venv/bin/fmkit", "endpoints", "list", "--json"]))
url = next(e["url"] for e in endpoints if e["name"] == "movielens")
body = json.dumps({"user": sys.argv[1], "k": 10, "exclude_seen": True}).encode()
req = urllib.request.Request(url + "/recommend", body, {"Content-Type": "application/json"})
print(json.dumps(json.load(urllib.request.urlopen(req, timeout=30)), indent=2))
PY

echo "== stop the endpoint"
$FM endpoints delete movielens
trap - EXIT
