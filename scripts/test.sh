#!/usr/bin/env bash
# The whole test suite: the Rust workspace (cargo test), then the Python package built into a
# virtualenv and its pytest suite (bindings, known-answer vectors, the accountant against
# Google's dp-accounting, the Flower integration). Installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace
# Validated rounds (issue 11, feature `validate`, not in the default build yet): the
# derivations, disputes and evidence, and rounds with the norm proof at upload.
cargo test -p secagg-core --features validate --lib -- validate
cargo test -p secagg-core --features cheats --test validation
# `secagg simulate --validate` and the simulator's validated rounds (step 9; one build of
# secagg-sim with `validate` serves both).
cargo test -p secagg-cli --features validate --test validate_cli
cargo test -p secagg-sim --features validate --test validation
bash .ci/python.sh
