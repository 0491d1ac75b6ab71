#!/usr/bin/env bash
# The whole test suite: the Rust workspace (cargo test), then the Python package built into a
# virtualenv and its pytest suite (bindings, known-answer vectors, the accountant against
# Google's dp-accounting, the Flower integration). Installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace
# Validated rounds (issue 11) are in the default build of secagg-cli and secagg-sim, so the
# workspace run above builds the core with `validate` and `cheats` and runs their tests too.
bash .ci/python.sh
