#!/usr/bin/env bash
# Check each documented install in its own fresh virtualenv, with the commands a user runs
# (README "Install"; .ci/run calls this after the test suite):
#   serve  pip install -e '.[serve]'  (no torch): fmkit serve and fmkit deploy, answered over
#          HTTP (/ping, /invocations, /recommend), and fmkit recommend, with a model fmkit
#          trained and with SageMaker's own model.tar.gz (../shared/data/sagemaker-fm-u1)
#   all    pip install torch==2.13.0, then -e '.[all]' (no test tools, so no scikit-learn):
#          fmkit prepare, the README's Python example exactly as README.md has it, and
#          FMClassifier / FMRegressor
#   full   '.[all,test]' is the test-suite virtualenv, .venv (scripts/test.sh)
# The fmkit model is trained beforehand with .venv (run scripts/test.sh first).
# MovieLens comes from $FMKIT_DATA_DIR, else ../shared/data/ml-100k, else GroupLens.
# FMKIT_CHECK_DIR keeps the virtualenvs and files there (default: a temporary folder, removed).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-python3}
HELP="$REPO/scripts/check_installs.py"
PIP=(-m pip install -q --disable-pip-version-check -c "$REPO/scripts/constraints.txt")
# pip, without the noise of index folders this machine's pip.conf names but lacks
quiet() { "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }
if [ -n "${FMKIT_CHECK_DIR:-}" ]; then
  WORK=$FMKIT_CHECK_DIR; mkdir -p "$WORK"
else
  WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
fi
export FMKIT_HOME="$WORK/home"            # registry and endpoints of these checks only
if [ -z "${FMKIT_DATA_DIR:-}" ] && [ -d ../shared/data/ml-100k ]; then
  export FMKIT_DATA_DIR=$(cd ../shared/data/ml-100k && pwd)
fi
SM_MODEL=""
if [ -f ../shared/data/sagemaker-fm-u1/model.tar.gz ]; then
  SM_MODEL=$(cd ../shared/data/sagemaker-fm-u1 && pwd)/model.tar.gz
fi
[ -x .venv/bin/fmkit ] || { echo "check_installs: run scripts/test.sh first (.venv)" >&2; exit 1; }
START=$SECONDS
step() { echo "== [$((SECONDS - START)) s] $*"; }

step "a model trained with .venv (MovieLens 100K ua, binary, 3 epochs)"
.venv/bin/fmkit prepare movielens --split ua --target binary --output "$WORK/data" >/dev/null
.venv/bin/fmkit train --train "$WORK/data/train" --test "$WORK/data/test" \
  --model-dir "$WORK/model" --predictor-type binary_classifier --epochs 3 --no-progress > "$WORK/train.json" \
  2> "$WORK/train.log" || { cat "$WORK/train.log" >&2; exit 1; }
VOCAB="$WORK/data/vocabulary.json"

# ---------------------------------------------------------------------------------------
step "serve: fresh virtualenv, pip install -e '.[serve]'"
SV="$WORK/venv-serve"
"$PY" -m venv "$SV"
quiet "$SV/bin/python" "${PIP[@]}" -e ".[serve]"
"$SV/bin/python" "$HELP" absent torch sklearn optuna
FM="$SV/bin/fmkit"

serve_checks() {  # $1 label, $2 model, $3... extra flags (--vocabulary)
  local label=$1 model=$2; shift 2
  local port pid url
  step "serve [$label]: fmkit serve --model-dir $model $*"
  port=$("$SV/bin/python" "$HELP" free-port)
  "$FM" serve --model-dir "$model" --port "$port" "$@" > "$WORK/serve-$label.log" 2>&1 &
  pid=$!
  if ! "$SV/bin/python" "$HELP" http "http://127.0.0.1:$port" --recommend 196; then
    kill "$pid" 2>/dev/null || true; cat "$WORK/serve-$label.log" >&2; exit 1
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  step "serve [$label]: fmkit deploy, invoke, fmkit endpoints delete"
  "$FM" deploy --model-dir "$model" --name "ci-$label" "$@" >/dev/null
  url=$("$SV/bin/python" "$HELP" endpoint-url "ci-$label" "$FM")
  "$SV/bin/python" "$HELP" http "$url" --recommend 196 \
    || { "$FM" endpoints delete "ci-$label" || true; exit 1; }
  "$FM" endpoints delete "ci-$label" >/dev/null
  step "serve [$label]: fmkit recommend --user 196 -k 5"
  "$FM" recommend --model-dir "$model" --user 196 -k 5 "$@" > "$WORK/recommend-$label.json"
  "$SV/bin/python" -c 'import json, sys; r = json.load(open(sys.argv[1])); \
assert r["recommendations"], r; print("  recommend:", [x["item"] for x in r["recommendations"]])' \
    "$WORK/recommend-$label.json"
}
serve_checks fmkit "$WORK/model"
if [ -n "$SM_MODEL" ]; then
  serve_checks sagemaker "$SM_MODEL" --vocabulary "$VOCAB"
else
  echo "   (no ../shared/data/sagemaker-fm-u1/model.tar.gz: SageMaker's model not checked)"
fi
"$SV/bin/python" "$HELP" absent torch   # still no torch after serving

# ---------------------------------------------------------------------------------------
step "all: fresh virtualenv, pip install torch==2.13.0, then -e '.[all]'"
AV="$WORK/venv-all"
"$PY" -m venv "$AV"
quiet "$AV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0"
quiet "$AV/bin/python" "${PIP[@]}" -e ".[all]"
"$AV/bin/python" "$HELP" absent sklearn pytest hypothesis moto
"$AV/bin/python" -c 'import boto3, optuna, s3fs, numba, torch, starlette'   # the extras
step "all: fmkit --help, fmkit prepare movielens, the README's Python example"
"$AV/bin/fmkit" --help > /dev/null
mkdir -p "$WORK/readme"
(cd "$WORK/readme" && "$AV/bin/fmkit" prepare movielens --split ua --target binary \
  --output data > /dev/null && "$AV/bin/python" "$HELP" readme-example "$REPO/README.md")
step "all: the README's workflow commands: fmkit train, fmkit evaluate"
(cd "$WORK/readme" && "$AV/bin/fmkit" train --train data/train --test data/test \
  --model-dir cli-model --predictor-type binary_classifier --epochs 2 --no-progress \
  > train.json 2> train.log && "$AV/bin/fmkit" evaluate --model-dir cli-model \
  --test data/test --ranking-k 10 > evaluate.json) \
  || { cat "$WORK/readme/train.log" >&2; exit 1; }
"$AV/bin/python" -c 'import json, sys; m = json.load(open(sys.argv[1])); \
print("  evaluate: test:binary_classification_accuracy", \
      round(m["test:binary_classification_accuracy"], 4))' "$WORK/readme/evaluate.json"
step "all: FMClassifier / FMRegressor without scikit-learn"
"$AV/bin/python" "$HELP" estimators

step "all installs checked in $((SECONDS - START)) s"
