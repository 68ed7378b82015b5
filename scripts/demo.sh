#!/usr/bin/env bash
# The README's main job: the whole pipeline on the embedded default broker. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh

export VOXLEDGER_CONFIG="${VOXLEDGER_CONFIG:-examples/voxledger.toml}"
exec .venv/bin/voxledger demo "$@"
