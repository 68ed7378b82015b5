"""The ceiling faust itself puts on the processors: an agent that does nothing, per process.

The processors' app (`create_app`, its exact settings) runs one agent that only acknowledges
each record (`noop`) or forwards its bytes unchanged to the redacted topic (`forward`), over
--messages records of the size of a typical envelope already on the raw topic of the
embedded broker. Printed: records/s from the first record to the last, and the worker's CPU
microseconds per record (both of its threads). Whatever an agent does comes on top.

    .venv/bin/python bench/faust_ceiling.py [--messages 60000] [--json FILE]
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
from pathlib import Path

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # no network at import

from confluent_kafka import Producer
from warehouse_throughput import environment, free_port, settings_for

from voxledger.broker import start_broker, stop_broker
from voxledger.config import Settings
from voxledger.kafka import client_config
from voxledger.topics import ensure_topics

RECORD = b'{"v":1,"payload":"' + b"x" * 400 + b'"}'  # the median envelope is ~500 bytes
MODES = ("noop", "forward")


def worker(mode: str, messages: int, result: Path) -> None:
    """Run in a child: the processors' app with one bare agent, until `messages` are seen."""
    import faust

    from voxledger.config import load_settings
    from voxledger.processors.app import create_app, raw_topic

    settings = load_settings()
    app = create_app(settings)
    topics = settings.topics
    source = raw_topic(app, topics.raw.name, topics.raw.partitions)
    out = raw_topic(app, topics.redacted.name, topics.redacted.partitions)
    clock: dict[str, float] = {}

    @app.agent(source, name=f"bench_{mode}")
    async def bare(stream: faust.StreamT) -> None:
        seen = 0
        async for event in stream.noack().events():
            if not seen:
                clock["wall"], clock["cpu"] = time.perf_counter(), time.process_time()
            if mode == "forward":
                await out.send(key=event.key, value=event.value)
            event.ack()
            seen += 1
            if seen == messages:
                wall = time.perf_counter() - clock["wall"]
                cpu = time.process_time() - clock["cpu"]
                result.write_text(json.dumps({"per_s": seen / wall, "cpu_us": cpu / seen * 1e6}))
                os.kill(os.getpid(), signal.SIGTERM)

    faust.Worker(app, loglevel="warning", override_logging=False).execute_from_commandline()


def measure(mode: str, messages: int, work: Path, bootstrap: str) -> dict[str, float]:
    env = environment(work, bootstrap, f"ceiling-{mode}", 1)
    settings = settings_for(env)
    ensure_topics(settings)
    produce(settings, settings.topics.raw.name, messages)
    result = work / f"{mode}.json"
    child = subprocess.run(
        [sys.executable, __file__, "--worker", mode, "--messages", str(messages), str(result)],
        env=env,
        capture_output=True,
        timeout=600,
    )
    if not result.exists():
        raise SystemExit(f"the {mode} worker ended without a result:\n{child.stderr.decode()}")
    return json.loads(result.read_text())


def produce(settings: Settings, topic: str, messages: int) -> None:
    out = Producer(client_config(settings, **{"linger.ms": 5}))
    for i in range(messages):
        while True:
            try:
                out.produce(topic, key=f"session-{i % 200}".encode(), value=RECORD)
                break
            except BufferError:
                out.poll(0.05)
        out.poll(0)
    assert out.flush(60) == 0, "the broker did not take every record"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--json", type=Path, help="also write the figures here (bench/run_all)")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("result", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.argv = [sys.argv[0], "worker", "--without-web"]  # faust's own command line
        worker(args.worker, args.messages, args.result)
        return
    work = Path(tempfile.mkdtemp(prefix="vx-faust-ceiling-"))
    broker = Settings(data_dir=work / "broker")
    state, _ = start_broker(broker, free_port())
    try:
        figures = {
            mode: measure(mode, args.messages, work, state.bootstrap_servers) for mode in MODES
        }
    finally:
        stop_broker(broker)
    for mode, f in figures.items():
        print(
            f"faust agent, {mode:8} {f['per_s']:>8,.0f} records/s  {f['cpu_us']:>6.0f} µs CPU each"
        )
    cores = os.cpu_count()
    print(f"({args.messages} records of {len(RECORD)} bytes, one worker process, {cores} cores)")
    if args.json:
        args.json.write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
