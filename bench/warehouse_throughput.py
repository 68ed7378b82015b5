"""Warehouse throughput and freshness on the embedded tansu broker, with the real components.

Three measurements, each on topics of its own:
1. sink alone: redacted envelopes already on the topic → Parquet (`Sink`, in this process).
2. end to end: raw envelopes already on the topic → `voxledger processors` → redacted →
   `voxledger sink` → Parquet (both child processes). Rates are taken between 10 % and
   100 % of the rows, so process start-up (spaCy loading, group joins) is left out.
3. freshness: with both warm, envelopes are produced at a steady rate with observed_at =
   now (what the proxy stamps); each one's latency is the moment its row is readable in
   Parquet minus its observed_at.

Sessions are copies of the recorded GA support call (tests/data/realtime_logs), with fresh
session and envelope ids.

    .venv/bin/python -u bench/warehouse_throughput.py --envelopes 5000 --rate 400 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # no network at import

import pyarrow.parquet as pq
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from voxledger.broker import start_broker, stop_broker
from voxledger.config import Settings, load_settings
from voxledger.envelope import Envelope, new_envelope_id, utc_now
from voxledger.ingest.capture import SESSION_CLOSED
from voxledger.kafka import client_config
from voxledger.processors.cost.logs import read_envelopes
from voxledger.topics import ensure_topics
from voxledger.warehouse.sink import Sink

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "tests" / "data" / "realtime_logs" / "ga_support_call.jsonl"
EXAMPLE_CONFIG = REPO / "examples" / "voxledger.toml"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sessions(template: list[Envelope]) -> Iterator[list[Envelope]]:
    """Endless copies of the template session, each with new ids and observed_at = now,
    closed as the proxy closes a session (so every agent concludes it)."""
    closing = template[-1].model_copy(
        update={"seq": template[-1].seq + 1, "type": SESSION_CLOSED, "direction": "client"}
    )
    closing = closing.model_copy(update={"payload": {"type": SESSION_CLOSED, "reason": "bench"}})
    for_copy = [*template, closing]
    while True:
        session_id = f"bench_{uuid.uuid4().hex[:12]}"
        now = utc_now()
        yield [
            Envelope.trusted(
                **{
                    **e.__dict__,
                    "envelope_id": new_envelope_id(),
                    "session_id": session_id,
                    "observed_at": now,
                }
            )
            for e in for_copy
        ]


def envelopes(template: list[Envelope], count: int) -> list[Envelope]:
    """At least `count` envelopes, in whole sessions (a cut session holds its deltas)."""
    out: list[Envelope] = []
    for session in sessions(template):
        out.extend(session)
        if len(out) >= count:
            return out
    return out


def producer(settings: Settings) -> Producer:
    return Producer(
        client_config(settings, **{"acks": "all", "linger.ms": 5, "compression.type": "zstd"})
    )


def produce(settings: Settings, topic: str, items: list[Envelope]) -> None:
    out = producer(settings)
    for e in items:
        while True:
            try:
                out.produce(topic, key=e.key(), value=e.to_bytes())
                break
            except BufferError:
                out.poll(0.05)
        out.poll(0)
    assert out.flush(60) == 0, "the broker did not take every envelope"


class TopicCounter:
    """Messages on a topic so far, counted by reading it (tansu's ListOffsets answers with
    the start of the last record batch, so watermarks undercount)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.consumer = Consumer(
            client_config(settings, **{"group.id": "bench-count", "log_level": 0})
        )
        parts = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        self.seen = 0

    def __call__(self) -> int:
        while batch := self.consumer.consume(10_000, 0.05):
            self.seen += sum(1 for m in batch if m.error() is None)
        return self.seen

    def close(self) -> None:
        self.consumer.close()


class ParquetWatch:
    """The events rows readable so far: new files' footers (and ids) as they land."""

    def __init__(self, root: Path) -> None:
        self.root = root / "events"
        self.seen: dict[Path, int] = {}
        self.rows = 0

    def poll(self, ids: bool = False) -> list[tuple[str, float, float]]:
        """Count new files' rows; with `ids`, return (envelope_id, observed_at s, redacted
        record's Kafka timestamp s) of the new rows."""
        found: list[tuple[str, float, float]] = []
        for path in self.root.rglob("*.parquet") if self.root.exists() else []:
            if path in self.seen:
                continue
            try:
                if ids:
                    columns = ["envelope_id", "observed_at", "kafka_timestamp"]
                    table = pq.read_table(path, columns=columns)
                    seen = table["observed_at"].cast("int64").to_pylist()
                    sent = table["kafka_timestamp"].cast("int64").to_pylist()
                    ids_ = table["envelope_id"].to_pylist()
                    found.extend(
                        (i, a / 1e6, b / 1e6) for i, a, b in zip(ids_, seen, sent, strict=True)
                    )
                    n = table.num_rows
                else:
                    n = pq.ParquetFile(path).metadata.num_rows
            except (OSError, ValueError):
                continue  # replaced under us: picked up next poll
            self.seen[path] = n
            self.rows += n
        return found


def wait(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass
class Rate:
    count: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.count / self.seconds if self.seconds else float("inf")


def rate_10_to_100(progress: Callable[[], int], total: int, deadline_s: float) -> Rate:
    """Items/s between 10 % and 100 % of `total`, polling `progress()`."""
    mark = max(1, total // 10)
    wait(lambda: progress() >= mark, deadline_s, "10 % of the rows")
    start, at_start = time.perf_counter(), progress()
    wait(lambda: progress() >= total, deadline_s, "every row")
    return Rate(total - at_start, time.perf_counter() - start)


def child(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "voxledger", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def environment(work: Path, bootstrap: str, prefix: str, workers: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXLEDGER_")}
    env.update(
        {
            "VOXLEDGER_CONFIG": str(EXAMPLE_CONFIG),
            "VOXLEDGER_DATA_DIR": str(work / prefix),
            "VOXLEDGER_BOOTSTRAP_SERVERS": bootstrap,
            "VOXLEDGER_PROCESSORS__PSEUDONYM_SECRET": "bench secret",
            "VOXLEDGER_PROCESSORS__METRICS_PORT": str(free_port()),
            "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
        }
    )
    for role in ("raw", "redacted", "findings", "costs", "deadletter"):
        env[f"VOXLEDGER_TOPICS__{role.upper()}__NAME"] = f"{prefix}.{role}"
    return env


def settings_for(env: dict[str, str]) -> Settings:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def bench_sink(work: Path, bootstrap: str, template: list[Envelope], count: int) -> Rate:
    env = environment(work, bootstrap, "sinkonly", 1)
    settings = settings_for(env)
    ensure_topics(settings)
    topic = settings.topics.redacted.name
    warm = envelopes(template, 200)  # group join, imports and first files are not throughput
    produce(settings, topic, warm)
    sink = Sink(settings, group_id="bench-sink")
    sink.subscribe()
    drain(sink, len(warm))
    batch = envelopes(template, count)
    produce(settings, topic, batch)
    wall, cpu = time.perf_counter(), time.process_time()
    drain(sink, len(warm) + len(batch))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"  sink: {len(batch)} envelopes in {wall:.2f} s, {cpu:.2f} s CPU of this process")
    sink.close()
    return Rate(len(batch), wall)


def drain(sink: Sink, total: int) -> None:
    while sink.stats.rows_written < total:
        sink.poll_once()
        if sink.stats.records >= total:
            sink.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envelopes", type=int, default=5000, help="throughput run size")
    parser.add_argument("--rate", type=float, default=400, help="freshness run: envelopes/s")
    parser.add_argument("--seconds", type=float, default=10, help="freshness run length")
    parser.add_argument("--workers", type=int, default=2, help="processor worker processes")
    parser.add_argument("--bootstrap", help="use this broker instead of starting tansu")
    parser.add_argument("--sink-only", action="store_true", help="measure the sink alone")
    parser.add_argument("--json", type=Path, help="also write the figures here (bench/run_all)")
    args = parser.parse_args()
    template, _ = read_envelopes(TEMPLATE)
    work = Path(tempfile.mkdtemp(prefix="vx-wh-bench-"))
    broker_settings = Settings(data_dir=work / "broker")
    bootstrap = args.bootstrap
    if not bootstrap:
        state, _ = start_broker(broker_settings, free_port())
        bootstrap = state.bootstrap_servers
    try:
        run(args, work, bootstrap, template)
    finally:
        if not args.bootstrap:
            stop_broker(broker_settings)
    print(f"(work dir {work})")


def run(args: argparse.Namespace, work: Path, bootstrap: str, template: list[Envelope]) -> None:
    n = args.envelopes
    print(f"1. sink alone, {n} redacted envelopes already on the topic")
    sink_rate = bench_sink(work, bootstrap, template, n)
    if args.sink_only:
        print(f"sink alone: redacted → Parquet  {sink_rate.per_s:,.0f} envelopes/s")
        return

    print(f"2. end to end, {n} raw envelopes → processors ({args.workers} workers) → sink")
    env = environment(work, bootstrap, "e2e", args.workers)
    settings = settings_for(env)
    ensure_topics(settings)
    raw = envelopes(template, n)
    n = len(raw)
    produce(settings, settings.topics.raw.name, raw)
    watch = ParquetWatch(settings.data_dir / "warehouse")
    logs = work / "e2e"
    logs.mkdir(exist_ok=True)
    procs = child(["processors", "--workers", str(args.workers)], env, logs / "processors.log")
    sink = child(["sink"], env, logs / "sink.log")
    try:
        counter = TopicCounter(settings, settings.topics.redacted.name)
        proc_rate = rate_10_to_100(counter, n, 600)
        counter.close()
        wait(lambda: (watch.poll(), watch.rows)[1] >= n, 120, "the sink to catch up")
        print("3. freshness")
        latencies = freshness(settings, template, watch, args.rate, args.seconds)
        e2e_total = end_to_end_rate(settings, template, watch, n)
    finally:
        stop(sink)
        stop(procs)
    report(n, sink_rate, proc_rate, e2e_total, latencies, args)


def end_to_end_rate(
    settings: Settings, template: list[Envelope], watch: ParquetWatch, n: int
) -> Rate:
    """Warm processors and sink: n raw envelopes produced at once, rate until all are rows."""
    before = watch.rows
    batch = envelopes(template, n)
    n = len(batch)
    start = time.perf_counter()
    produce(settings, settings.topics.raw.name, batch)
    wait(lambda: (watch.poll(), watch.rows)[1] >= before + n, 600, "the warm end-to-end run")
    return Rate(n, time.perf_counter() - start)


def freshness(
    settings: Settings, template: list[Envelope], watch: ParquetWatch, rate: float, seconds: float
) -> tuple[list[float], list[float]]:
    """Latencies: observed_at → readable in Parquet, and (the sink's share) the redacted
    record's Kafka timestamp → readable in Parquet."""
    out = producer(settings)
    topic = settings.topics.raw.name
    sent: set[str] = set()
    total: list[float] = []
    sink: list[float] = []

    def collect() -> None:
        now = time.time()
        for envelope_id, observed, redacted in watch.poll(ids=True):
            if envelope_id in sent:
                total.append(now - observed)
                sink.append(now - redacted)

    start = time.perf_counter()
    stream = (e for session in sessions(template) for e in session)
    next_poll = 0.0
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(elapsed * rate) - len(sent)
        for _ in range(max(0, due)):
            e = next(stream)
            e = Envelope.trusted(**{**e.__dict__, "observed_at": utc_now()})
            out.produce(topic, key=e.key(), value=e.to_bytes())
            sent.add(e.envelope_id)
        out.poll(0)
        if elapsed >= next_poll:
            collect()
            next_poll = elapsed + 0.05
        time.sleep(0.002)
    out.flush(30)
    deadline = time.monotonic() + 120
    while len(total) < len(sent) and time.monotonic() < deadline:
        collect()
        time.sleep(0.05)
    print(f"  {len(sent)} envelopes sent, {len(total)} seen in Parquet")
    return sorted(total), sorted(sink)


def pct(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(
    n: int,
    sink_rate: Rate,
    proc_rate: Rate,
    e2e: Rate,
    latencies: tuple[list[float], list[float]],
    args: argparse.Namespace,
) -> None:
    print()
    print(f"{'measure':48} {'value':>14}")
    print("-" * 63)
    print(f"{'sink alone: redacted → Parquet':48} {sink_rate.per_s:>10,.0f} /s")
    print(f"{'processors: raw → redacted (10 %→100 %)':48} {proc_rate.per_s:>10,.0f} /s")
    print(f"{'end to end, warm: raw → Parquet':48} {e2e.per_s:>10,.0f} /s")
    total, sink = latencies
    print(f"{'freshness p50 (observed_at → in Parquet)':48} {pct(total, 0.5):>12.2f} s")
    print(f"{'freshness p95':48} {pct(total, 0.95):>12.2f} s")
    print(f"{'freshness max':48} {pct(total, 1.0):>12.2f} s")
    print(f"{'  of which sink p50 (redacted record → Parquet)':48} {pct(sink, 0.5):>12.2f} s")
    print(f"{'  of which sink p95':48} {pct(sink, 0.95):>12.2f} s")
    print(
        f"(runs: {n} envelopes for throughput; freshness {args.rate:.0f}/s for "
        f"{args.seconds:.0f} s; {args.workers} processor workers; {os.cpu_count()} cores)"
    )
    if args.json:
        figures = {
            "sink_per_s": sink_rate.per_s,
            "processors_per_s": proc_rate.per_s,
            "end_to_end_per_s": e2e.per_s,
            "freshness_p50_s": pct(total, 0.5),
            "freshness_p95_s": pct(total, 0.95),
        }
        args.json.write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
