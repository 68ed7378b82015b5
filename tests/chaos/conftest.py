"""Fault injection tests: each runs one scenario of bench/chaos.py and asserts on its outcome.

Every scenario starts a broker of its own (embedded tansu in the test's tmp dir, free port),
the simulator, the proxy, the processors and the sink as `python -m voxledger …` processes,
and drives `voxledger loadgen --fast` through the proxy; all on loopback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="session")
def chaos() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        import chaos as module
    finally:
        sys.path.remove(str(BENCH))
    return module
