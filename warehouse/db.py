"""The DuckDB side of the warehouse: a database file whose views read the sink's Parquet.

`<data_dir>/warehouse.duckdb` (Settings.warehouse.database overrides) holds one base view per
table of the sink (`_base_events`, ...) and the public views of `tables.py` over them.

- Base views read `<root>/<table>/**/*.parquet` by glob, with `hive_partitioning` and
  `union_by_name`, so files the sink lands later are visible without any refresh. DuckDB
  fails on a glob that matches nothing, so a table with no file yet gets a typed empty
  SELECT instead; `connect()` notices when such a table gets its first file (or loses its
  last) and refreshes the views. Columns are cast to the sink's schema (`schema.SCHEMAS`),
  so an older file lacking a newer column still reads.
- Concurrency: DuckDB allows one read-write process per file, or many read-only ones. The
  sink never opens this file. A refresh opens it read-write only for the few statements it
  takes; when another process holds the file meanwhile, the connection gets the fresh
  views as TEMP views of its own instead (they shadow the stale stored ones).
- Object storage (`s3://...`): DuckDB's httpfs extension is not available here (nothing may
  download at run time), so the base relations are pyarrow datasets over pyarrow's
  S3FileSystem, registered on the connection, and the views are TEMP views of an in-memory
  database. They list the files when `connect()` runs: reconnect to see newer files. BI
  tools cannot use the DuckDB file for such a root.
- The dashboard reads marts (marts.py), files of tables computed from these views, rather
  than the views themselves.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from voxledger.config import Settings
from voxledger.errors import VoxLedgerError
from voxledger.warehouse import tables
from voxledger.warehouse.schema import BASE_TABLES, ERASURES, SCHEMAS
from voxledger.warehouse.storage import Store, open_store

__all__ = [
    "WarehouseError",
    "base_name",
    "check_read_only",
    "connect",
    "create_base_views",
    "database_path",
    "read_query",
    "refresh",
    "warehouse_root",
]

SOURCE_TABLES = (*BASE_TABLES, ERASURES)
STATE_TABLE = "_voxledger_state"
LOCK_WAIT_S = 10.0  # how long to wait for another process's refresh to let go of the file

_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.bool_(): "BOOLEAN",
    pa.float64(): "DOUBLE",
    pa.timestamp("us", tz="UTC"): "TIMESTAMP WITH TIME ZONE",
}


class WarehouseError(VoxLedgerError):
    """The warehouse database cannot be opened or a query on it failed."""


def warehouse_root(settings: Settings) -> str:
    """The Parquet root: a local directory (absolute) or an s3:// URI."""
    return open_store(settings).uri


def database_path(settings: Settings) -> Path:
    """The DuckDB file holding the views."""
    return settings.warehouse.database or settings.data_dir / "warehouse.duckdb"


def base_name(table: str) -> str:
    """The DuckDB relation a base table is read through: events → _base_events."""
    return f"_base_{table.removesuffix('_raw')}"


def _duckdb_type(field: pa.Field) -> str:
    if pa.types.is_decimal(field.type):
        return f"DECIMAL({field.type.precision},{field.type.scale})"
    return _DUCKDB_TYPES[field.type]


# Columns the views read that a sink version may not write yet: NULL until it does.
OPTIONAL_COLUMNS = {
    "findings_raw": (pa.field("tenant", pa.string()),),
    "costs_raw": (pa.field("tenant", pa.string()),),
    "session_costs_raw": (pa.field("tenant", pa.string()),),
}


def _columns(table: str, source: str | None) -> str:
    """The table's columns cast to its schema, plus the hive `date`; NULLs without a source."""
    fields = list(SCHEMAS[table])
    exprs = [
        f"CAST({'NULL' if source is None else f.name} AS {_duckdb_type(f)}) AS {f.name}"
        for f in fields
    ]
    names = {f.name for f in fields}
    exprs.extend(
        f"CAST(NULL AS {_duckdb_type(f)}) AS {f.name}"
        for f in OPTIONAL_COLUMNS.get(table, ())
        if f.name not in names
    )
    exprs.append(f"CAST({'NULL' if source is None else 'date'} AS DATE) AS date")
    where = " WHERE false" if source is None else ""
    return f"SELECT {', '.join(exprs)} FROM {source or '(SELECT 1)'}{where}"


def _glob(store: Store, table: str) -> str:
    pattern = store.path(table, "**", "*.parquet").replace("'", "''")
    return f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)"


def _tables_with_files(store: Store) -> tuple[str, ...]:
    return tuple(t for t in SOURCE_TABLES if store.list_paths(t))


def _statements(store: Store, present: tuple[str, ...], temp: bool) -> list[str]:
    """CREATE OR REPLACE statements for the base views and every public view, in order."""
    kind = "TEMP VIEW" if temp else "VIEW"
    out = []
    for table in SOURCE_TABLES:
        source = _glob(store, table) if table in present else None
        out.append(f"CREATE OR REPLACE {kind} {base_name(table)} AS {_columns(table, source)}")
    out.extend(f"CREATE OR REPLACE {kind} {name} AS {sql}" for name, sql in tables.definitions())
    return out


def _fingerprint(store: Store, present: tuple[str, ...]) -> str:
    """What the stored views depend on: their SQL, the root, and which tables have files."""
    text = "\n".join([store.uri, ",".join(present), *_statements(store, present, temp=False)])
    return hashlib.sha256(text.encode()).hexdigest()


def refresh(settings: Settings, *, marts: bool = True) -> Path:
    """Create or update the database file and its views; returns its path.

    With `marts`, also rebuild the dashboard's mart when files changed since it was built
    (`voxledger warehouse refresh`; see marts.py).
    """
    store = open_store(settings)
    if not store.local:
        raise WarehouseError(
            f"{store.uri} is object storage: its views live per connection (use connect())"
        )
    path = database_path(settings)
    present = _tables_with_files(store)
    _write_views(path, store, present, _fingerprint(store, present))
    if marts:
        from voxledger.warehouse.marts import refresh as refresh_marts  # marts builds on db

        refresh_marts(settings)
    return path


def _write_views(path: Path, store: Store, present: tuple[str, ...], fingerprint: str) -> None:
    """Open the file read-write just long enough to (re)create the views."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        _write_views_on(con, store, present, fingerprint)
    finally:
        con.close()


def _stored_fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
    try:
        rows = con.execute(f"SELECT fingerprint FROM {STATE_TABLE}").fetchall()
    except duckdb.CatalogException:
        return None
    return rows[0][0] if rows else None


def connect(settings: Settings, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A connection on which every public view exists (empty tables give empty views).

    Local roots open the database file (created or refreshed first when needed);
    object-storage roots get an in-memory database over pyarrow datasets.
    """
    store = open_store(settings)
    if not store.local:
        return _connect_object_storage(store)
    path = database_path(settings)
    present = _tables_with_files(store)
    fingerprint = _fingerprint(store, present)
    con = _open(path, read_only) if path.exists() else None
    if con is not None and _stored_fingerprint(con) == fingerprint:
        return con
    if con is not None and not read_only:
        _write_views_on(con, store, present, fingerprint)
        return con
    if con is not None:
        con.close()
    try:
        _write_views(path, store, present, fingerprint)
    except (duckdb.IOException, duckdb.ConnectionException):
        # Another process (or connection of this one) holds the file: use TEMP views.
        con = _open(path, read_only)
        _create_views(con, _statements(store, present, temp=True))
        return con
    return _open(path, read_only)


def _write_views_on(
    con: duckdb.DuckDBPyConnection, store: Store, present: tuple[str, ...], fingerprint: str
) -> None:
    """Replace every view and the fingerprint in one transaction: readers see all or none."""
    con.execute("BEGIN")
    try:
        _create_views(con, _statements(store, present, temp=False))
        con.execute(f"CREATE OR REPLACE TABLE {STATE_TABLE} (fingerprint VARCHAR)")
        con.execute(f"INSERT INTO {STATE_TABLE} VALUES (?)", [fingerprint])
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _open(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting briefly while another process refreshes it read-write."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise WarehouseError(f"cannot open the warehouse database {path}: {exc}") from None
            time.sleep(0.05)  # retry, not synchronisation: the holder is another process


# -- object storage -------------------------------------------------------------------------


def _connect_object_storage(store: Store) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB whose base relations are pyarrow datasets on the S3 filesystem."""
    con = duckdb.connect(":memory:")
    create_base_views(con, store)
    for name, sql in tables.definitions():
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")
    return con


def create_base_views(con: duckdb.DuckDBPyConnection, store: Store) -> None:
    """TEMP views `_base_<table>` on `con` over the files of `store`.

    Local roots read by glob (a table without files gets a typed empty SELECT); object
    storage gets pyarrow datasets registered on `con`, listing the files now.
    """
    statements = []
    for table in SOURCE_TABLES:
        if store.local:
            present = bool(store.list_paths(table))
            source = _glob(store, table) if present else None
        else:
            source = _register_dataset(con, store, table)
        statements.append(
            f"CREATE OR REPLACE TEMP VIEW {base_name(table)} AS {_columns(table, source)}"
        )
    _create_views(con, statements)


def _create_views(con: duckdb.DuckDBPyConnection, statements: list[str]) -> None:
    """Run the CREATE VIEW statements; a file lacking a column the views read (written by an
    older VoxLedger) is a WarehouseError that says how to upgrade it."""
    for statement in statements:
        try:
            con.execute(statement)
        except duckdb.BinderException as exc:
            view = statement.split(" AS ", 1)[0].rsplit(" ", 1)[-1]
            column = re.search(r'[Cc]olumn "([^"]+)"', str(exc))
            raise WarehouseError(
                f"cannot create view {view}: the Parquet files lack column "
                f"{column.group(1) if column else '(see below)'}, as an older VoxLedger wrote "
                "them; `voxledger compact` rewrites them with the current schema. "
                f"(DuckDB: {str(exc).splitlines()[0]})"
            ) from None


def _register_dataset(con: duckdb.DuckDBPyConnection, store: Store, table: str) -> str | None:
    """Register `table`'s files as a pyarrow dataset on `con`; its name, None without files."""
    paths = store.list_paths(table)
    if not paths:
        return None
    schema = SCHEMAS[table]
    dataset = pads.dataset(
        paths,
        schema=schema.append(pa.field("date", pa.string())),
        format="parquet",
        filesystem=store.fs,
        partitioning=pads.partitioning(pa.schema([("date", pa.string())]), flavor="hive"),
        partition_base_dir=store.table_dir(table),
    )
    con.register(f"_dataset_{table}", dataset)
    return f"_dataset_{table}"


# -- read-only queries ----------------------------------------------------------------------

READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


def check_read_only(query: str) -> None:
    """WarehouseError unless `query` is exactly one SELECT (or EXPLAIN) statement.

    The file is opened read-only too; this also refuses what a read-only database still
    allows (COPY ... TO a file, ATTACH, SET) and object-storage connections, which are
    in-memory.
    """
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise WarehouseError(str(exc)) from None
    if len(statements) != 1:
        raise WarehouseError(f"give exactly one SQL statement (got {len(statements)})")
    kind = statements[0].type
    if kind not in READ_STATEMENTS:
        raise WarehouseError(
            f"only SELECT queries are allowed: the warehouse is read-only "
            f"(got a {kind.name} statement)"
        )


def read_query(
    settings: Settings, query: str, max_rows: int | None = None
) -> tuple[list[str], list[tuple]]:
    """Column names and rows of one read-only query from a user (CLI, dashboard SQL page).

    Besides the statement check, the connection may read only the Parquet root: the data dir
    also holds the pseudonym key and the dashboard's audit file. WarehouseError carries
    DuckDB's message.
    """
    check_read_only(query)
    con = connect(settings, read_only=True)
    try:
        restrict_file_access(con, settings)
        cursor = con.execute(query)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall() if max_rows is None else cursor.fetchmany(max_rows)
        return columns, rows
    except duckdb.Error as exc:
        raise WarehouseError(str(exc)) from None
    finally:
        con.close()


def restrict_file_access(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Let `con` read files under the warehouse root only, and lock that setting."""
    root = warehouse_root(settings)
    allowed = root if "://" in root else str(Path(root).resolve())
    con.execute("SET allowed_directories = ?", [[allowed]])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
