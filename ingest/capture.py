"""One session's frames → gap-free Envelope v1s, in order, with secrets and audio removed."""

from __future__ import annotations

import gc
import logging
import os
import pickle
import signal
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

from voxledger.envelope import (
    ENVELOPE_VERSION,
    Direction,
    Envelope,
    Source,
    audio_bytes_per_ms,
    elide_audio,
    new_envelope_id,
    parse_frame,
    utc_from_ns,
    utc_now,
)
from voxledger.ingest.scrub import scrub_event

if TYPE_CHECKING:
    from voxledger.ingest.metrics import PublisherMetrics
    from voxledger.ingest.publisher import Publisher

log = logging.getLogger(__name__)

SESSION_OPENED = "voxledger.session.opened"
SESSION_CLOSED = "voxledger.session.closed"


class _Held(NamedTuple):
    seq: int
    direction: Direction
    type: str
    payload: dict[str, Any]
    observed_at: datetime
    envelope_id: str


@dataclass
class SessionContext:
    """What every envelope of a session carries besides the event."""

    source: Source
    tenant: str | None = None
    app: str | None = None
    region: str | None = None
    upstream_host: str | None = None
    model: str | None = None


class SessionCapture:
    """Numbers frames over both directions and publishes them once the session id is known.

    The session id is the upstream `session.created` id; frames before it are held in order
    and stamped when it arrives, or with the capture's own id when it never comes.
    """

    def __init__(
        self,
        context: SessionContext,
        publish: Callable[[Envelope], None],
        fallback_session_id: str,
        session_id: str | None = None,
    ) -> None:
        self.context = context
        self.publish = publish
        self.fallback_session_id = fallback_session_id
        self.session_id = session_id
        self.next_seq = 0
        self._held: list[_Held] = []
        self._input_bytes_per_ms = audio_bytes_per_ms(None)
        self._output_bytes_per_ms = audio_bytes_per_ms(None)

    def frame(
        self, direction: Direction, data: str | bytes, observed_at: datetime | None = None
    ) -> None:
        """Capture one relayed WebSocket frame."""
        event_type, payload = parse_frame(data)
        self._learn(event_type, payload)
        self.event(direction, event_type, self._clean(payload), observed_at)

    def event(
        self,
        direction: Direction,
        event_type: str,
        payload: dict[str, Any],
        observed_at: datetime | None = None,
    ) -> None:
        """Capture an already parsed (and cleaned) event, e.g. VoxLedger's own session events."""
        held = _Held(
            self.next_seq,
            direction,
            event_type,
            payload,
            observed_at or utc_now(),
            new_envelope_id(),  # when seen, not when published: ids stay time-ordered
        )
        self.next_seq += 1
        if self.session_id is None:
            self._held.append(held)
        else:
            self.publish(self._envelope(held))

    def flush(self) -> None:
        """Publish held frames under the fallback id (the session id never came)."""
        if self.session_id is None:
            self._set_session_id(self.fallback_session_id)

    def _learn(self, event_type: str, payload: dict[str, Any]) -> None:
        session = payload.get("session") if isinstance(payload.get("session"), dict) else {}
        if event_type in ("session.created", "session.updated"):
            if isinstance(session.get("model"), str):
                self.context.model = session["model"]
            self._learn_audio_formats(session)
        if event_type == "session.created" and self.session_id is None:
            self._set_session_id(str(session.get("id") or self.fallback_session_id))

    def _learn_audio_formats(self, session: dict[str, Any]) -> None:
        audio = session.get("audio") if isinstance(session.get("audio"), dict) else {}
        for direction, beta_key in (
            ("input", "input_audio_format"),
            ("output", "output_audio_format"),
        ):
            side = audio.get(direction) if isinstance(audio.get(direction), dict) else {}
            fmt = side.get("format")
            fmt = fmt.get("type") if isinstance(fmt, dict) else fmt or session.get(beta_key)
            if isinstance(fmt, str):
                setattr(self, f"_{direction}_bytes_per_ms", audio_bytes_per_ms(fmt))

    def _clean(self, payload: dict[str, Any]) -> dict[str, Any]:
        is_input = payload.get("type") == "input_audio_buffer.append"
        rate = self._input_bytes_per_ms if is_input else self._output_bytes_per_ms
        return elide_audio(scrub_event(payload), rate)

    def _set_session_id(self, session_id: str) -> None:
        self.session_id = session_id
        held, self._held = self._held, []
        for item in held:
            self.publish(self._envelope(item))

    def _envelope(self, held: _Held) -> Envelope:
        # Every field is built here from checked parts: validating them again costs more
        # than the rest of the capture.
        return Envelope.trusted(
            v=ENVELOPE_VERSION,
            envelope_id=held.envelope_id,
            session_id=self.session_id,
            seq=held.seq,
            direction=held.direction,
            type=held.type,
            observed_at=held.observed_at,
            payload=held.payload,
            source=self.context.source,
            tenant=self.context.tenant,
            app=self.context.app,
            region=self.context.region,
            upstream_host=self.context.upstream_host,
            model=self.context.model,
        )


# -- the capture process ------------------------------------------------------------------------
# The proxy relays in one process and captures in another (voxledger.ingest.proxy.CaptureProcess),
# so parsing, envelope building, the Kafka client and their GC pauses never delay a relay.

# Proxy → capture process, on its stdin: records of a header (kind, session number,
# time.time_ns() when seen, body length) and a body: the frame as relayed, or for OPEN and
# CLOSE a pickled dict. A session's records arrive in relay order; end of input ends the run.
RECORD = struct.Struct("<BIQI")
FRAME_CLIENT, FRAME_SERVER, OPEN, CLOSE = range(4)
_DIRECTIONS: tuple[Direction, Direction] = ("client", "server")
# Capture process → proxy, on its stdout: a length, then a pickled (kind, value) pair: "ready",
# "status", "closed" (a session's last envelope is published), "log" (a LogRecord's fields),
# "bye". The first message on stdin is such a pair too: the settings to run with.
MESSAGE = struct.Struct("<I")
STATUS_INTERVAL_S = 0.05
METRICS_INTERVAL_S = 1.0
CAPTURE_NICENESS = 19  # where SCHED_IDLE is not to be had
READ_BYTES = 64 * 1024  # below malloc's mmap threshold: no map/unmap per read


def message(kind: str, value: Any) -> bytes:
    body = pickle.dumps((kind, value), protocol=pickle.HIGHEST_PROTOCOL)
    return MESSAGE.pack(len(body)) + body


class CaptureService:
    """Captures the sessions of one proxy from its records, publishing every envelope."""

    def __init__(self, publisher: Publisher, report: Callable[[str, Any], None]) -> None:
        self.publisher = publisher
        self.report = report
        self.sessions: dict[int, SessionCapture] = {}
        self.spooled: Counter[int] = Counter()
        # Frames or envelopes of a session that could be neither published nor spooled: the
        # session.closed marker reports them (`unpublished`), so nothing is dropped silently.
        self.unpublished: Counter[int] = Counter()

    def feed(self, data: bytes | bytearray) -> int:
        """Handle every complete record in `data`; how many bytes they took."""
        view = memoryview(data)
        offset, end = 0, len(data)
        header = RECORD.size
        while offset + header <= end:
            kind, number, observed_ns, length = RECORD.unpack_from(view, offset)
            start = offset + header
            if start + length > end:
                break
            body = bytes(view[start : start + length])
            offset = start + length
            try:
                if kind <= FRAME_SERVER:
                    self.sessions[number].frame(_DIRECTIONS[kind], body, utc_from_ns(observed_ns))
                elif kind == OPEN:
                    self._open(number, observed_ns, pickle.loads(body))
                else:
                    self._close(number, observed_ns, pickle.loads(body))
            except Exception:  # a capture bug must not end every session's capture
                self.unpublished[number] += kind <= FRAME_SERVER
                log.exception("capturing a frame failed; it is missing from the raw topic")
        view.release()
        return offset

    def finish(self) -> None:
        """The proxy is gone: publish what sessions still hold under their fallback ids."""
        for capture in self.sessions.values():
            capture.flush()
        self.sessions.clear()

    def _open(self, number: int, observed_ns: int, opened: dict[str, Any]) -> None:
        resume = opened.get("resume")
        capture = SessionCapture(
            SessionContext(**opened["context"]),
            publish=partial(self._publish, number),
            fallback_session_id=opened["fallback_session_id"],
            session_id=resume["session_id"] if resume else None,
        )
        self.sessions[number] = capture
        if resume:
            # A session an earlier capture process had (it died): only its end is left to
            # capture, at the seq that follows every frame the proxy relayed.
            capture.next_seq = resume["next_seq"]
            return
        capture.event("client", SESSION_OPENED, opened["event"], utc_from_ns(observed_ns))

    def _close(self, number: int, observed_ns: int, event: dict[str, Any]) -> None:
        capture = self.sessions.pop(number)
        # Filled in here, where they are known; the keys keep the proxy's order.
        lost = self.unpublished.pop(number, 0)
        if lost:
            event = {k: v for k, v in event.items() if k not in ("publish_failures", "spooled")}
            event["unpublished"] = lost
        # Publisher-wide delivery failures so far (each retried through the spool).
        event["publish_failures"] = self.publisher.delivery_failures
        event["spooled"] = self.spooled[number]
        capture.event("client", SESSION_CLOSED, event, utc_from_ns(observed_ns))
        capture.flush()
        spooled = self.spooled.pop(number, 0)
        self.report("closed", (number, {"session_id": capture.session_id, "spooled": spooled}))

    def _publish(self, number: int, envelope: Envelope) -> None:
        try:
            spooled = self.publisher.publish(envelope)
        except Exception:  # e.g. the spool is closed: count it, never drop it silently
            self.unpublished[number] += 1
            log.exception("envelope seq %d of a session could not be published", envelope.seq)
            return
        if spooled:
            self.spooled[number] += 1


class _Reports:
    """Messages to the proxy; any thread may send, and a proxy gone just drops them."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self.gone = False

    def send(self, kind: str, value: Any) -> None:
        data = message(kind, value)
        with self._lock:
            if self.gone:
                return
            try:
                self._out.write(data)
                self._out.flush()
            except OSError:
                self.gone = True


class _ForwardedLogs(logging.Handler):
    """Log records go to the proxy, which emits them through its own logging."""

    def __init__(self, reports: _Reports) -> None:
        super().__init__()
        self.reports = reports
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {
                k: v if v is None or isinstance(v, str | int | float | bool) else repr(v)
                for k, v in record.__dict__.items()
                if k not in ("msg", "args", "exc_info")
            }
            fields["msg"] = record.getMessage()
            if record.exc_info and not record.exc_text:
                fields["exc_text"] = self._formatter.formatException(record.exc_info)
            self.reports.send("log", fields)
        except Exception:
            self.handleError(record)


def _report_status(
    publisher: Publisher, metrics: PublisherMetrics, reports: _Reports, stop: threading.Event
) -> None:
    # State as it changes (the proxy decides on it); rendered metrics now and then.
    last: dict[str, Any] | None = None
    rendered, rendered_at = metrics.render(), time.monotonic()
    while not stop.wait(STATUS_INTERVAL_S):
        try:
            status = publisher.status()
            if time.monotonic() - rendered_at >= METRICS_INTERVAL_S:
                rendered, rendered_at = metrics.render(), time.monotonic()
            elif status == last:
                continue
            reports.send("status", (status, rendered))
            last = status
        except Exception:  # the reports must outlive any one failure
            log.exception("reporting the publisher's status failed")


def serve_captures() -> None:
    """The capture process: records on stdin, envelopes to Kafka (or the spool), reports on stdout.

    It runs until its input ends (the proxy closed it, or died), then publishes what it
    holds, flushes the producer and the spool, and exits. Signals are the proxy's to handle.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _yield_the_cpu_to_relaying()
    reports = _Reports(os.fdopen(os.dup(1), "wb"))
    os.dup2(2, 1)  # a stray print must not garble the reports
    sys.stdout = sys.stderr

    buffer = bytearray()
    while len(buffer) < MESSAGE.size or len(buffer) < MESSAGE.size + _length(buffer):
        chunk = os.read(0, READ_BYTES)
        if not chunk:
            return  # the proxy gave up before starting us
        buffer += chunk
    start = MESSAGE.size + _length(buffer)
    _, init = pickle.loads(buffer[MESSAGE.size : start])
    del buffer[:start]

    root = logging.getLogger()
    root.handlers[:] = [_ForwardedLogs(reports)]
    root.setLevel(init["log_level"])

    from voxledger.ingest.metrics import PublisherMetrics
    from voxledger.ingest.publisher import Publisher

    metrics = PublisherMetrics()
    publisher = Publisher(init["settings"], metrics).start()
    service = CaptureService(publisher, reports.send)
    # What start-up made lives for good: the collector need not rescan it.
    gc.collect()
    gc.freeze()
    reports.send("ready", (publisher.status(), metrics.render()))
    stop = threading.Event()
    status = threading.Thread(
        target=_report_status,
        args=(publisher, metrics, reports, stop),
        name="capture-status",
        daemon=True,
    )
    status.start()
    try:
        while chunk := os.read(0, READ_BYTES):
            buffer += chunk
            taken = service.feed(buffer)
            del buffer[:taken]
        if buffer:
            log.error("the proxy's last record was cut short (%d bytes); dropped", len(buffer))
        service.finish()
    finally:
        stop.set()
        status.join()
        publisher.close()
        reports.send("bye", (publisher.status(), metrics.render()))


def _yield_the_cpu_to_relaying() -> None:
    """Run capture only when relaying (and everything else) leaves a core idle.

    Under SCHED_IDLE a waking relay preempts capture at once; with a mere high nice value it
    could wait out capture's time slice (~1 ms). Capture may lag a burst, buffered in the
    pipe and the proxy's memory (bounded: see CAPTURE_BACKLOG_MAX_BYTES in the proxy).
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        os.nice(CAPTURE_NICENESS)


def _length(buffer: bytearray) -> int:
    return MESSAGE.unpack_from(buffer)[0]
