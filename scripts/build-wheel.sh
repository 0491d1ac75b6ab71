#!/usr/bin/env bash
# Builds the portable Python wheel of secagg: one abi3 wheel (CPython 3.9 and newer) for
# manylinux2014 (glibc 2.17 and newer), linked with zig (`ziglang` from PyPI), so that it
# installs with pip on any such Linux without a Rust toolchain. With the gRPC service
# (`secagg.connect`, `secagg.serve`, `secagg.combine`, `python -m secagg.cluster`).
#
#   bash scripts/build-wheel.sh [OUT_DIR]     # default target/wheels; prints the wheel's path
#
# Needs Python 3.9+ with venv and pip, and a Rust toolchain (the build machine only).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-target/wheels}"
PYTHON="${PYTHON:-python3}"
VENV="${SECAGG_WHEEL_VENV:-${CARGO_TARGET_DIR:-target}/wheel-venv}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q "maturin==1.16.0" "ziglang==0.17.1"
rm -f "$OUT"/secagg-*.whl
# maturin finds zig through the ziglang package of the interpreter it runs under.
PATH="$VENV/bin:$PATH" "$VENV/bin/maturin" build --release --zig \
  --compatibility manylinux2014 --strip -m crates/secagg-py/Cargo.toml --out "$OUT" \
  -F extension-module -F service >&2
ls "$OUT"/secagg-*-abi3-manylinux*.whl
