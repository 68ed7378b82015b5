#!/usr/bin/env bash
# The README's test command: installs what the tests need, then lint, format check and the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test

.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest "$@"
