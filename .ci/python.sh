#!/usr/bin/env bash
# Python package CI: builds the `secagg` wheel (maturin, release), installs it into a fresh-or-
# reused virtualenv, and runs pytest on python/tests. Idempotent and non-interactive; needs only
# Python >= 3.9 with venv + pip, and a Rust toolchain. Exits non-zero on any failure.
#
#   bash .ci/python.sh            # PYTHON=python3.11 to pick the interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
start=$(date +%s)

PYTHON="${PYTHON:-python3}"
TARGET="${CARGO_TARGET_DIR:-target}"
# Absolute paths: pytest runs from inside $TARGET.
case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac
VENV="${SECAGG_PY_VENV:-$TARGET/python-venv}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
WHEELS="$TARGET/python-wheels"

step() { echo; echo "=== $* ==="; }

step "virtualenv $VENV ($("$PYTHON" --version 2>&1))"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q "maturin==1.16.0" "numpy==2.4.6" "pytest==9.2.0"

# --- extra test dependencies (other helpers add lines here) ---
# [flower] Flower 1.42.0 for python/tests/test_flower.py and examples/flower_digits. flwr 1.42.0
# requires certifi>=2026.10.19, newer than a registry may carry: install its other requirements
# (as its wheel's METADATA lists them), any certifi, then flwr itself with --no-deps.
"$PY" -m pip install -q certifi "grpcio>=1.70.0,<2.0.0" "grpcio-health-checking>=1.70.0,<2.0.0" \
  "protobuf>=5.28.0,<7.0.0" "cryptography>=50.0.0,<51.0.0" "pycryptodome>=3.18.0,<4.0.0" \
  "iterators>=0.0.2,<0.0.3" "typer>=0.13.0,<0.21.0" "uv>=0.13.5,<0.14.0" "tomli>=2.0.1,<3.0.0" \
  "tomli-w>=1.0.0,<2.0.0" "pathspec>=1.0.4,<2.0.0" "prompt-toolkit>=3.0.52,<4.0.0" \
  "rich>=14.0.0,<15.0.0" "pyyaml>=6.0.2,<7.0.0" "requests>=2.33.0,<3.0.0" "httpx>=0.28.1,<1.0.0" \
  "click>=8.0.0,<9.0.0" "packaging>=24.0,<26.0" "sqlalchemy[asyncio]>=2.0.45,<3.0.0" \
  "alembic>=1.18.1,<2.0.0" "uvicorn[standard]>=0.49.0,<0.50.0" "fastapi>=0.138.0,<0.139.0" \
  "starlette>=1.3.1,<1.4.0"
"$PY" -m pip install -q --no-deps "flwr==1.42.0"
# [flower] examples/flower_digits (data set and plot).
"$PY" -m pip install -q "scikit-learn==1.9.1" "matplotlib==3.11.2"

# [dp] Google's dp-accounting, the reference the accountant is checked against
# (python/tests/test_accountant_vs_dp_accounting.py); import it here so a failed install fails
# CI instead of skipping the comparison.
"$PY" -m pip install -q "dp-accounting==0.6.0"
"$PY" -c "import dp_accounting"

# [ray] Ray 2.55.1 (the version flwr[simulation] 1.42 pins) for python/tests/test_cluster.py:
# secagg.cluster's driver on a local Ray instance, one shard killed mid-round. Installed after
# Flower so that its protobuf pin stands (Ray needs only protobuf >= 3.20.3); imported here so
# a failed install fails CI instead of skipping the tests.
"$PY" -m pip install -q "ray==2.55.1"
"$PY" -c "import ray"

# --- end of extra test dependencies ---

step "build the portable wheel (abi3, manylinux2014, zig; with the gRPC service)"
# The wheel users install (scripts/build-wheel.sh); the tests below run against it.
WHEEL=$(bash scripts/build-wheel.sh "$WHEELS" | tail -n 1)
echo "$WHEEL ($(du -h "$WHEEL" | cut -f1))"

step "the wheel alone: a fresh virtualenv with only numpy, one round (scripts/wheel_smoke.py)"
FRESH="$TARGET/wheel-smoke-venv"
rm -rf "$FRESH"
"$PYTHON" -m venv "$FRESH"
"$FRESH/bin/python" -m pip install -q "$WHEEL"
(cd "$TARGET" && "$FRESH/bin/python" "$OLDPWD/scripts/wheel_smoke.py")

"$PY" -m pip install -q --force-reinstall --no-deps "$WHEEL"

step "secagg binary for the service tests"
cargo build --release -q -p secagg-cli
export SECAGG_BIN="$TARGET/release/secagg"

step "pytest python/tests"
# Run from outside the source tree so the installed wheel is what gets imported.
(cd "$TARGET" && "$PY" -m pytest -q -rs "$OLDPWD/python/tests")

echo
echo "python CI passed in $(( $(date +%s) - start )) s"
