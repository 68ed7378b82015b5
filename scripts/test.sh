#!/usr/bin/env bash
# The README's test command: installs what the tests need, then lint, format check and the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
# The dashboard's browser tests drive Debian's chromium through chromium-driver.
if [ ! -x /usr/bin/chromedriver ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver >/dev/null
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest "$@"
