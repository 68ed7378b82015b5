"""The CLI on bad input: a documented exit code and, for exit 2, one line naming the problem.

Never a traceback. Files are the corpus in tests/data/fuzz_corpus, plus an empty file and
the huge frames (stored compressed, written out here).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from badinput import CORPUS, LINE_FILES, REPO, corpus_bytes
from click.testing import CliRunner, Result
from helpers import read_topic

from voxledger.cli import cli
from voxledger.config import Settings
from voxledger.envelope import UNPARSED_TYPE
from voxledger.ingest.capture import SESSION_CLOSED

FILES = [*LINE_FILES, "binary_frames.bin", "huge_frame.jsonl", "empty.jsonl"]
# Not one Realtime event can be read from these: cost and policy must say so (exit 2).
NO_EVENT = {"binary_frames.bin", "empty.jsonl"}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every corpus file as a plain file, the huge frames decompressed, and an empty file."""
    folder = tmp_path_factory.mktemp("corpus")
    for name in FILES:
        source = "huge_frame.jsonl.gz" if name == "huge_frame.jsonl" else name
        data = b"" if name == "empty.jsonl" else corpus_bytes(source)
        (folder / name).write_bytes(data)
    return folder


def invoke(args: list[str], stdin: bytes | None = None, obj: Any = None) -> Result:
    return CliRunner().invoke(cli, args, input=stdin, obj=obj)


def assert_clean(result: Result, codes: set[int], file: str | None = None) -> None:
    """A documented exit code, no traceback, and exit 2 as one `Error: ` line."""
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    assert not crashed, f"crashed: {result.exception!r}"
    assert "Traceback" not in result.output + result.stderr
    assert result.exit_code in codes, (result.exit_code, result.stderr[-500:])
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        if file is not None:
            assert file in lines[0]


# -- cost and policy: warnings for lines they cannot read, exit 2 when nothing is left -------


@pytest.mark.parametrize("name", FILES)
def test_cost_reports_bad_lines_as_warnings(corpus_dir: Path, name: str) -> None:
    path = corpus_dir / name
    result = invoke(["cost", str(path)])
    assert_clean(result, {2} if name in NO_EVENT else {0}, str(path))
    if name not in NO_EVENT:
        assert "total_usd" in result.output


@pytest.mark.parametrize("name", FILES)
def test_policy_check_reports_bad_lines_as_warnings(corpus_dir: Path, name: str) -> None:
    path = corpus_dir / name
    result = invoke(["policy", "check", str(path)])
    # 0 pass (or needs review), 1 a session fails, 2 nothing to judge.
    assert_clean(result, {2} if name in NO_EVENT else {0, 1}, str(path))
    if name not in NO_EVENT:
        assert "verdict: " in result.output


def test_cost_flags_negative_and_missing_usage_instead_of_pricing_zero(corpus_dir: Path) -> None:
    result = invoke(["cost", "--json", str(corpus_dir / "wrong_types.jsonl")])
    assert_clean(result, {0})
    warnings = " | ".join(__import__("json").loads(result.output)["warnings"])
    assert "input_tokens is 'abc', not a token count" in warnings
    assert "input_tokens is -20, not a token count" in warnings
    assert "resp_missing (completed): no usage" in warnings
    assert "response.done without a response object" in warnings


# -- prices check: any corpus file is an invalid catalog -------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_prices_check_rejects_each_corpus_file(corpus_dir: Path, name: str) -> None:
    path = corpus_dir / name
    assert_clean(invoke(["prices", "check", str(path)]), {2}, str(path))


# -- redact: plain text and --jsonl ----------------------------------------------------------

# The huge frames as plain text are the --jsonl case's 2 MB texts plus two 2 MB runs: ~50 s
# of NER and regexes for nothing --jsonl does not cover already.
PLAIN_SKIP = {"huge_frame.jsonl"}


@pytest.mark.parametrize("name", [n for n in FILES if n not in PLAIN_SKIP])
def test_redact_plain_text_keeps_every_line(corpus_dir: Path, name: str, fuzz_redactor) -> None:
    data = (corpus_dir / name).read_bytes()
    result = invoke(["redact", "--lang", "en"], stdin=data, obj={"redactor": fuzz_redactor})
    assert_clean(result, {0, 2})
    if result.exit_code == 0:
        # stdout only (stderr names the lines that are not UTF-8), split as bytes split.
        assert len(result.stdout_bytes.splitlines()) == len(data.splitlines())


@pytest.mark.parametrize("name", FILES)
def test_redact_jsonl_reports_bad_lines(corpus_dir: Path, name: str, fuzz_redactor) -> None:
    data = (corpus_dir / name).read_bytes()
    args = ["redact", "--jsonl", "--lang", "en"]
    result = invoke(args, stdin=data, obj={"redactor": fuzz_redactor})
    assert_clean(result, {0, 2})


# -- import: every line reaches the raw topic, bad ones as parse errors -----------------------


@pytest.mark.parametrize("name", FILES)
def test_import_keeps_every_line(pipeline_settings: Settings, corpus_dir: Path, name: str) -> None:
    path = corpus_dir / name
    result = invoke(["import", str(path)])
    lines = [line for line in path.read_bytes().split(b"\n") if line.strip()]
    if not lines:
        assert_clean(result, {0})
        assert "0 events" in result.output
        return
    assert_clean(result, {0})
    summary = result.output.strip().splitlines()[-1]
    assert summary.startswith("imported 1 file: ") and f" {len(lines)} event" in summary
    # One envelope a line, bad lines as parse errors, plus each session's closing marker.
    raw = read_topic(
        pipeline_settings,
        pipeline_settings.topics.raw.name,
        lambda found: sum(e["type"] != SESSION_CLOSED for e in found) >= len(lines),
    )
    events = [e for e in raw if e["type"] != SESSION_CLOSED]
    assert len(events) == len(lines)
    for envelope in events:
        if envelope["type"] == UNPARSED_TYPE:
            assert envelope["payload"]["parse_error"]


def test_import_of_a_missing_file_or_a_folder_is_one_line(pipeline_settings: Settings) -> None:
    for path in ("/nonexistent/log.jsonl", str(CORPUS)):
        assert_clean(invoke(["import", path]), {2}, path)


# -- as users run it: a real process, a real stderr ------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["cost", str(CORPUS / "binary_frames.bin")],
        ["policy", "check", str(CORPUS / "binary_frames.bin")],
        ["prices", "check", str(CORPUS / "malformed_json.jsonl")],
    ],
    ids=["cost", "policy", "prices"],
)
def test_the_command_prints_one_line_and_exits_2(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voxledger", *args], capture_output=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 2
    assert b"Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith(b"Error: ")
