"""Every benchmark, one table: each figure next to its anchor and goal from the issues.

    .venv/bin/python bench/run_all.py [--quick] [--out bench/results.md]

Each benchmark runs as its own process (as documented in its file) and writes its figures
as JSON; this script only runs them and lays the figures out. `--quick` runs smaller loads
(for a smoke test, not for the README).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    args: list[str]
    quick_args: list[str]


BENCHMARKS = [
    Benchmark("proxy", "proxy_latency.py", ["--sessions", "1,50,200"], ["--quick"]),
    Benchmark(
        "warehouse",
        "warehouse_throughput.py",
        ["--envelopes", "20000", "--rate", "100", "--seconds", "20"],
        ["--envelopes", "2000", "--rate", "50", "--seconds", "5"],
    ),
    Benchmark("faust", "faust_ceiling.py", [], ["--messages", "5000"]),
    Benchmark("redaction", "redaction_speed.py", [], ["--repeat", "1"]),
    Benchmark("dashboard", "dashboard_render.py", [], ["--events", "100000"]),
]


@dataclass(frozen=True)
class Row:
    measure: str
    value: Callable[[dict], str]
    anchor: str
    goal: str
    met: Callable[[dict], bool | None]


def _ms(x: float) -> str:
    return f"{x:.2f} ms"


def _get(figures: dict, *path: str) -> float:
    for key in path:
        figures = figures[key]
    return float(figures)  # type: ignore[arg-type]


def _proxy(sessions: str) -> Row:
    def value(f: dict) -> str:
        added = f["proxy"][sessions]
        return " / ".join(_ms(added[q]) for q in ("p50", "p95", "p99"))

    return Row(
        f"proxy added latency p50/p95/p99, {sessions} session(s)",
        value,
        "LiteLLM gateway p99 13 ms",
        "p99 ≤ 1 ms at 50 sessions" if sessions == "50" else "—",
        (lambda f: _get(f, "proxy", "50", "p99") <= 1.0) if sessions == "50" else lambda f: None,
    )


ROWS = [
    _proxy("1"),
    _proxy("50"),
    _proxy("200"),
    Row(
        "end to end raw → Parquet",
        lambda f: f"{_get(f, 'warehouse', 'end_to_end_per_s'):,.0f} envelopes/s",
        "sink alone: see next row",
        "≥ 20,000 envelopes/s",
        lambda f: _get(f, "warehouse", "end_to_end_per_s") >= 20_000,
    ),
    Row(
        "sink alone redacted → Parquet",
        lambda f: f"{_get(f, 'warehouse', 'sink_per_s'):,.0f} envelopes/s",
        "—",
        "—",
        lambda f: None,
    ),
    Row(
        "processors raw → redacted",
        lambda f: f"{_get(f, 'warehouse', 'processors_per_s'):,.0f} envelopes/s",
        "—",
        "—",
        lambda f: None,
    ),
    Row(
        "faust's own ceiling: an agent that only acks, one process",
        lambda f: (
            f"{_get(f, 'faust', 'noop', 'per_s'):,.0f} records/s "
            f"({_get(f, 'faust', 'noop', 'cpu_us'):.0f} µs CPU each)"
        ),
        "—",
        "—",
        lambda f: None,
    ),
    Row(
        "faust's own ceiling: an agent that forwards, one process",
        lambda f: (
            f"{_get(f, 'faust', 'forward', 'per_s'):,.0f} records/s "
            f"({_get(f, 'faust', 'forward', 'cpu_us'):.0f} µs CPU each)"
        ),
        "—",
        "—",
        lambda f: None,
    ),
    Row(
        "freshness p95 (proxy observed_at → queryable)",
        lambda f: f"{_get(f, 'warehouse', 'freshness_p95_s'):.2f} s",
        "—",
        "≤ 5 s",
        lambda f: _get(f, "warehouse", "freshness_p95_s") <= 5.0,
    ),
    Row(
        "redaction, one process (recall: README eval table)",
        lambda f: f"{_get(f, 'redaction', 'ours_per_s'):,.0f} utterances/s",
        "stock Presidio: see value",
        "faster than stock Presidio",
        lambda f: _get(f, "redaction", "ours_per_s") > _get(f, "redaction", "stock_per_s"),
    ),
    Row(
        "redaction, stock Presidio (same models)",
        lambda f: f"{_get(f, 'redaction', 'stock_per_s'):,.0f} utterances/s",
        "—",
        "—",
        lambda f: None,
    ),
    Row(
        "dashboard page, slowest, first render after a start (1M events)",
        lambda f: f"{_get(f, 'dashboard', 'slowest_first_s'):.2f} s",
        "54–155 s before marts",
        "≤ 1 s",
        lambda f: _get(f, "dashboard", "slowest_first_s") <= 1.0,
    ),
    Row(
        "dashboard mart build (background, 1M events)",
        lambda f: f"{_get(f, 'dashboard', 'mart_build_s'):.2f} s",
        "—",
        "—",
        lambda f: None,
    ),
    Row(
        "dashboard page, slowest, warm (1M events)",
        lambda f: f"{_get(f, 'dashboard', 'slowest_warm_s'):.2f} s",
        "—",
        "≤ 1 s",
        lambda f: _get(f, "dashboard", "slowest_warm_s") <= 1.0,
    ),
]


def run(benchmark: Benchmark, quick: bool, out: Path) -> dict | None:
    args = benchmark.quick_args if quick else benchmark.args
    command = [sys.executable, str(BENCH / benchmark.script), *args, "--json", str(out)]
    print(f"… {benchmark.name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.monotonic()
    done = subprocess.run(command, stdout=sys.stderr)
    print(f"  took {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    if done.returncode != 0 or not out.exists():
        print(f"  {benchmark.name} failed (exit {done.returncode})", file=sys.stderr)
        return None
    return json.loads(out.read_text())


def table(figures: dict, chosen: set[str]) -> str:
    lines = ["| measure | value | anchor | goal | met |", "|---|---:|---|---|---|"]
    for row in ROWS:
        try:
            value, met = row.value(figures), row.met(figures)
        except KeyError as missing:  # the benchmark's figures, named by the first key
            ran = missing.args[0] in chosen
            value, met = ("(benchmark failed)" if ran else "(not run)"), None
        except TypeError:
            value, met = "(benchmark failed)", None
        mark = "" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {row.measure} | {value} | {row.anchor} | {row.goal} | {mark} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small loads: a smoke test")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument("--only", action="append", help="run only this benchmark (repeatable)")
    args = parser.parse_args()
    figures: dict = {}
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    with tempfile.TemporaryDirectory() as scratch:
        for benchmark in chosen:
            result = run(benchmark, args.quick, Path(scratch) / f"{benchmark.name}.json")
            if result is not None:
                figures[benchmark.name] = result
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    command = " ".join([".venv/bin/python", "bench/run_all.py", *sys.argv[1:]])
    report = (
        f"{table(figures, {b.name for b in chosen})}\n\nmachine: {machine} · command: `{command}`\n"
    )
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0 if len(figures) == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
