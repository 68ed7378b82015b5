"""The warehouse on S3-compatible object storage: moto's real server, pyarrow's S3 filesystem."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pyarrow.dataset as ds
import pytest
from helpers import free_port
from moto.server import ThreadedMotoServer
from sink_fixtures import produce_world, reload, run_sink_until

from voxledger.config import Settings
from voxledger.warehouse.compact import compact
from voxledger.warehouse.erase import erase
from voxledger.warehouse.schema import BASE_TABLES, SCHEMAS
from voxledger.warehouse.storage import live_files, open_store

BUCKET = "voxledger-test"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3-compatible HTTP server on a free port; yields its endpoint URL."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=BUCKET
        )
        yield endpoint
    finally:
        server.stop()


def s3_rows(settings: Settings, table: str) -> list[dict]:
    store = open_store(settings)
    files = [uri.removeprefix("s3://") for uri in live_files(settings, table)]
    dataset = ds.dataset(files, filesystem=store.fs, schema=SCHEMAS[table], format="parquet")
    return sorted(dataset.to_table().to_pylist(), key=lambda r: r["kafka_offset"])


def test_sink_compact_and_erase_on_s3(pipeline_settings: Settings, s3: str, monkeypatch) -> None:
    settings = reload(
        monkeypatch,
        url=f"s3://{BUCKET}/wh",
        s3_endpoint=s3,
        s3_region="us-east-1",
        flush_max_rows=10,
        flush_interval_s=0.2,
    )
    sent = produce_world(settings, sessions=3, per_session=10)
    store = open_store(settings)
    total = sum(sent["counts"].values())

    def landed() -> bool:
        files = store.list_files(BASE_TABLES)
        return sum(store.read_table(f.path).num_rows for f in files) >= total

    run_sink_until(settings, landed)

    keys = boto3.client("s3", endpoint_url=s3).list_objects_v2(Bucket=BUCKET, Prefix="wh/")
    names = [o["Key"] for o in keys["Contents"]]
    assert all(n.startswith("wh/") and n.endswith(".parquet") for n in names)
    assert any(n.startswith("wh/events/date=2026-03-01/") for n in names)
    events = s3_rows(settings, "events")
    assert sorted(r["envelope_id"] for r in events) == sent["envelope_ids"]
    # pyarrow reads the hive layout straight from the bucket.
    partitioned = ds.dataset(
        f"{BUCKET}/wh/events", filesystem=store.fs, format="parquet", partitioning="hive"
    )
    assert partitioned.count_rows() == len(events)

    before = {t: s3_rows(settings, t) for t in BASE_TABLES}
    result = compact(settings)
    assert result.merged > 0 and result.files_after < result.files_before
    assert {t: s3_rows(settings, t) for t in BASE_TABLES} == before

    erased = erase(settings, scope="session", target="sess-0001", requested_by="dpo")
    assert erased.rows_removed == 10 + 1 + 1 + 2 + 1
    assert all(r["session_id"] != "sess-0001" for t in BASE_TABLES for r in s3_rows(settings, t))
    assert b"sess-0001" in store.read_bytes(store.path("_erasure_list.jsonl"))
