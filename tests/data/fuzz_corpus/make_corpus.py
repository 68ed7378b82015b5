"""Writes the bad-input corpus next to this file: `python tests/data/fuzz_corpus/make_corpus.py`.

The files are committed; this script says how each was made, so a reviewer can regenerate
them. Frames too big for the repository (huge_frame) are stored gzip-compressed.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOGS = HERE.parent / "realtime_logs"
HUGE_TEXT_BYTES = 2 * 1024 * 1024  # beyond Kafka's default 1 MB message, below the proxy's limit


def envelope(**fields: object) -> dict[str, object]:
    """A valid Envelope v1 (source=import), with `fields` replacing or adding keys."""
    base: dict[str, object] = {
        "v": 1,
        "envelope_id": "0193f5a2-7c1e-7a00-8000-000000000001",
        "session_id": "sess_fuzz_envelope",
        "seq": 0,
        "direction": "server",
        "type": "response.done",
        "observed_at": "2026-11-27T10:00:00.000000Z",
        "tenant": "acme-us",
        "app": "support-bot",
        "region": "us",
        "upstream_host": "api.openai.com",
        "model": "gpt-realtime",
        "source": "import",
        "payload": {"type": "response.done", "response": {"id": "resp_fuzz"}},
    }
    base.update(fields)
    return base


def lines(*items: object) -> bytes:
    return b"".join(
        (item if isinstance(item, bytes) else json.dumps(item).encode()) + b"\n" for item in items
    )


def usage(**counts: object) -> dict[str, object]:
    return {
        "total_tokens": 30,
        "input_tokens": 20,
        "output_tokens": 10,
        "input_token_details": {"text_tokens": 20, "audio_tokens": 0, "cached_tokens": 0},
        "output_token_details": {"text_tokens": 10, "audio_tokens": 0},
        **counts,
    }


def response_done(response_id: str, response: object) -> dict[str, object]:
    return {"type": "response.done", "event_id": f"event_{response_id}", "response": response}


def nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


CORPUS: dict[str, bytes] = {
    "malformed_json.jsonl": lines(
        b'{"type": "response.create"',
        b'{"type": "response.create",}',
        b"{'type': 'response.create'}",
        b'{"type": response.create}',
        b"{type: 'conversation.item.create', item: [Object]}",
        b'{"type": "x"}}',
        b"]]]",
        b"not json at all",
        b'"just a string"',
        b"42",
        b"null",
        b"[]",
        b"{}",
        b'{"type": null}',
        b'{"type": 7}',
        b'{"type": "x", "n": NaN}',
        b'{"type": "x", "n": 1e999}',
        b'{"type": "x", "n": 123456789012345678901234567890}',
        b"\xef\xbb\xbf" + b'{"type": "response.create"}',
    ),
    "binary_frames.bin": bytes(range(256)) + b"\x00\xff\xfe\x80\x81" * 40 + b"\xc3\x28\xa0\xa1",
    "deep_nesting.jsonl": lines(
        *(
            f'{{"type": "conversation.item.create", "item": {nested(depth, kind)}}}'.encode()
            for depth in (64, 150, 250, 400, 900, 5000)
            for kind in ("list", "dict")
        ),
        ("[" * 20_000).encode(),
    ),
    "wrong_types.jsonl": lines(
        {"type": "session.created", "event_id": "event_w1", "session": "not an object"},
        response_done("resp_abc", {"id": "resp_abc", "usage": usage(input_tokens="abc")}),
        response_done(
            "resp_neg",
            {"id": "resp_neg", "usage": usage(input_tokens=-20, output_tokens=-10)},
        ),
        response_done(
            "resp_negdetail",
            {
                "id": "resp_negdetail",
                "usage": usage(input_token_details={"text_tokens": -5, "audio_tokens": "x"}),
            },
        ),
        response_done("resp_missing", {"id": "resp_missing", "status": "completed"}),
        response_done("resp_nocounts", {"id": "resp_nocounts", "usage": {}}),
        response_done("resp_nullusage", {"id": "resp_nullusage", "usage": None}),
        response_done("resp_list", [{"id": "resp_list"}]),
        response_done("resp_float", {"id": "resp_float", "usage": usage(output_tokens=1.5)}),
        response_done("resp_bool", {"id": "resp_bool", "usage": usage(input_tokens=True)}),
        response_done("resp_huge", {"id": "resp_huge", "usage": usage(input_tokens=10**30)}),
        {"type": "conversation.item.create", "item": {"type": "message", "content": "not a list"}},
        {"type": "conversation.item.create", "item": ["a", "list"]},
        {"type": "input_audio_buffer.append", "audio": 12345},
        {"type": "input_audio_buffer.append", "audio": "!!! not base64 !!!"},
        {"type": "response.output_audio_transcript.delta", "delta": None, "item_id": 5},
        {"type": "session.update", "session": {"tools": "none"}},
        {"type": "session.update", "session": {"tools": [1, None, {"authorization": 5}]}},
        {"type": "error", "event_id": "event_w2", "error": "a string, not an object"},
    ),
    "unknown_types.jsonl": lines(
        {"type": "future.event.nobody.knows", "event_id": "event_u1", "data": {"x": 1}},
        {"type": "", "event_id": "event_u2"},
        {"type": "response.done.v2", "event_id": "event_u3", "response": {"id": "r"}},
        {"type": "voxledger.session.closed"},
        {"type": "voxledger.unparsed", "raw_text": "spoofed"},
        {"type": "t" * 5000},
        {"type": "\u202eevil\u0000\u2028type"},
    ),
    "invalid_utf8.jsonl": lines(
        b'{"type": "conversation.item.create", "text": "caf\xe9"}',
        b'{"type": "response.create", "x": "\xff\xfe"}',
        b'{"type": "x", "overlong": "\xc0\xaf"}',
        b'{"type": "x", "surrogate_utf8": "\xed\xa0\x80"}',
        b'{"type": "x", "cut": "\xe2\x82"}',
        b"\x80\x81\x82 plain garbage",
    ),
    "lone_surrogates.jsonl": lines(
        b'{"type": "conversation.item.create", "text": "\\ud800"}',
        b'{"type": "x", "text": "\\udfff\\ud800"}',
        b'{"type": "\\ud83d"}',
        b'{"type": "x", "pair": "\\ud83d\\ude00"}',
    ),
    "envelopes_v2.jsonl": lines(
        envelope(v=2, envelope_id="0193f5a2-7c1e-7a00-8000-000000000002"),
        envelope(v="1", envelope_id="0193f5a2-7c1e-7a00-8000-000000000003"),
        envelope(v=0, envelope_id="0193f5a2-7c1e-7a00-8000-000000000004"),
        {k: v for k, v in envelope().items() if k != "v"},
        envelope(v=2, envelope_id="0193f5a2-7c1e-7a00-8000-000000000005", payload=[1, 2]),
    ),
    "bad_envelopes.jsonl": lines(
        envelope(seq="abc"),
        envelope(seq=-1),
        envelope(direction="sideways"),
        envelope(payload=["a", "list"]),
        envelope(payload="a string"),
        envelope(payload=None),
        envelope(source="carrier-pigeon"),
        envelope(observed_at="yesterday"),
        envelope(observed_at="0001-01-01T00:30:00+01:00"),
        envelope(observed_at="9999-12-31T23:59:59-01:00"),
        envelope(session_id=None),
        {k: v for k, v in envelope().items() if k != "session_id"},
        envelope(type=["response.done"]),
        envelope(payload={"type": "response.done", "text": "\ud800"}),  # escaped: lone surrogate
    ),
    "envelope_usage.jsonl": lines(
        *(
            envelope(
                envelope_id=f"0193f5a2-7c1e-7a00-8000-0000000001{n:02d}",
                seq=n,
                payload=response_done(f"resp_e{n}", response),
            )
            for n, response in enumerate(
                [
                    {"id": "resp_e0", "usage": usage(input_tokens="abc")},
                    {"id": "resp_e1", "usage": usage(input_tokens=-20, output_tokens=-10)},
                    {"id": "resp_e2", "status": "completed"},
                    {"id": "resp_e3", "usage": {}},
                    [{"id": "resp_e4"}],
                ]
            )
        )
    ),
}


def truncated_log() -> bytes:
    """A recorded GA call with lines cut mid-event, one line dropped and no final newline."""
    recorded = (LOGS / "ga_support_call.jsonl").read_bytes().splitlines()
    out = []
    for number, line in enumerate(recorded):
        if number % 5 == 3:
            out.append(line[: len(line) // 2])  # cut mid-event
        elif number % 11 == 7:
            continue  # a line lost altogether
        else:
            out.append(line)
    return b"\n".join(out)[:-7]  # the last line cut too, without its newline


def huge_frame() -> bytes:
    text = ("Lorem ipsum dolor sit amet. " * (HUGE_TEXT_BYTES // 28 + 1))[:HUGE_TEXT_BYTES]
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    event = {"type": "conversation.item.create", "item": item}
    big_b64 = base64.b64encode(b"\x00" * HUGE_TEXT_BYTES).decode()
    audio = {"type": "input_audio_buffer.append", "audio": big_b64}
    return lines(event, audio, b'{"type": "x", "junk": "' + b"A" * HUGE_TEXT_BYTES + b'"')


def main() -> None:
    for name, data in CORPUS.items():
        (HERE / name).write_bytes(data)
    (HERE / "truncated_log.jsonl").write_bytes(truncated_log())
    # mtime=0: the same bytes on every run, so the committed file only changes with the script.
    with gzip.GzipFile(HERE / "huge_frame.jsonl.gz", "wb", mtime=0) as out:
        out.write(huge_frame())


if __name__ == "__main__":
    main()
