"""Utterances per second through stock Presidio and through VoxLedger's redactor, one process."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # no network at import

from voxledger.processors.redaction import Pseudonyms, Redactor
from voxledger.processors.redaction._stock import StockPresidio
from voxledger.processors.redaction.evaluation import default_eval_files, load_labeled


def utterances(paths: list[Path]) -> dict[str, list[str]]:
    by_language: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        for line in load_labeled(path):
            by_language[line.lang].append(line.text)
    return dict(by_language)


Timing = tuple[float, float]  # (wall seconds, CPU seconds of this process)


def time_stock(stock: StockPresidio, texts: dict[str, list[str]], repeat: int) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        for language, batch in texts.items():
            stock.spans_many(batch, language)
    return time.perf_counter() - wall, time.process_time() - cpu


def time_ours(redactor: Redactor, texts: dict[str, list[str]], repeat: int) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    for n in range(repeat):
        redactor.clear_cache()  # cold: every utterance is analysed, none comes from cache
        session = Pseudonyms(f"bench-{n}", b"bench secret")
        for language, batch in texts.items():
            redactor.redact_texts(batch, language, session)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="*", type=Path, help="labeled JSONL sets [default: shipped]")
    parser.add_argument("--repeat", type=int, default=5, help="passes over the set [default: 5]")
    parser.add_argument("--json", type=Path, help="also write the figures here (bench/run_all)")
    args = parser.parse_args()
    paths = args.files or default_eval_files()
    texts = utterances(paths)
    count = sum(len(batch) for batch in texts.values()) * args.repeat
    stock, redactor = StockPresidio(), Redactor()
    time_stock(stock, texts, 1)  # warm-up: first calls load lazy parts of both
    time_ours(redactor, texts, 1)
    stock_t = time_stock(stock, texts, args.repeat)
    ours_t = time_ours(redactor, texts, args.repeat)
    print(f"{count} utterances ({', '.join(p.name for p in paths)}, {args.repeat} passes)\n")
    print("| system | wall s | utterances/s | CPU s | utterances per CPU-second |")
    print("|---|---:|---:|---:|---:|")
    for name, (wall, cpu) in (
        ("stock Presidio (sm models, batched, parser off)", stock_t),
        ("VoxLedger redactor (cold cache)", ours_t),
    ):
        print(f"| {name} | {wall:.2f} | {count / wall:.0f} | {cpu:.2f} | {count / cpu:.0f} |")
    print(f"\nspeed-up: {stock_t[0] / ours_t[0]:.2f}x wall, {stock_t[1] / ours_t[1]:.2f}x CPU")
    print(f"command: .venv/bin/python {' '.join(sys.argv)}")
    if args.json:
        figures = {"ours_per_s": count / ours_t[0], "stock_per_s": count / stock_t[0]}
        args.json.write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
