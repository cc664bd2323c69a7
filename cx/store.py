"""The embedded DuckDB store: one CX data model, created and upgraded by versioned migrations.

One read-write connection per process and database file; every query runs on its own cursor, because
Streamlit serves each browser session from a thread of the same process. ``data_version()`` changes
on every import and removal, so caches can key on it.
"""

from __future__ import annotations

import json
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import duckdb

from cx.errors import StoreBusy, TouchpointError, UnknownDimension

DEFAULT_DB = Path("data") / "touchpoint.duckdb"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Field:
    """One canonical column. ``kind`` says how raw text becomes a value at import."""

    name: str
    kind: str  # id | timestamp | text | dimension | integer | number | score | flag
    required: bool = False
    label: str = ""


@dataclass(frozen=True)
class Table:
    """One canonical table: its natural key and its fields, in column order."""

    name: str
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    label: str = ""

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


F = Field
TABLES: dict[str, Table] = {
    "responses": Table(
        "responses",
        key=("response_id",),
        label="survey responses (NPS, CSAT, CES)",
        fields=(
            F("response_id", "id", label="Response ID"),
            F("submitted_at", "timestamp", required=True, label="Submitted at"),
            F("customer_id", "id", label="Customer ID"),
            F("order_id", "id", label="Order ID"),
            F("nps", "score", label="NPS score (0–10)"),
            F("csat", "score", label="CSAT score"),
            F("ces", "score", label="CES score"),
            F("comment", "text", label="Comment"),
            F("survey", "dimension", label="Survey"),
            F("channel", "dimension", label="Channel"),
            F("touchpoint", "dimension", label="Touchpoint"),
            F("journey_stage", "dimension", label="Journey stage"),
            F("segment", "dimension", label="Segment"),
            F("region", "dimension", label="Region"),
            F("product", "dimension", label="Product"),
            F("language", "dimension", label="Language"),
        ),
    ),
    "tickets": Table(
        "tickets",
        key=("ticket_id",),
        label="support tickets",
        fields=(
            F("ticket_id", "id", label="Ticket ID"),
            F("created_at", "timestamp", required=True, label="Created at"),
            F("customer_id", "id", label="Customer ID"),
            F("first_response_at", "timestamp", label="First response at"),
            F("resolved_at", "timestamp", label="Resolved at"),
            F("status", "dimension", label="Status"),
            F("channel", "dimension", label="Channel"),
            F("priority", "dimension", label="Priority"),
            F("team", "dimension", label="Team"),
            F("category", "dimension", label="Category"),
            F("reopens", "integer", label="Reopens"),
            F("agent_replies", "integer", label="Agent replies"),
            F("csat", "score", label="CSAT score"),
            F("subject", "text", label="Subject"),
            F("description", "text", label="Description"),
        ),
    ),
    "orders": Table(
        "orders",
        key=("order_id",),
        label="orders and invoices",
        fields=(
            F("order_id", "id", label="Order ID"),
            F("customer_id", "id", required=True, label="Customer ID"),
            F("ordered_at", "timestamp", required=True, label="Ordered at"),
            # Not required: some exports (Olist's orders) carry the order but not its value; revenue
            # metrics then count only orders that have an amount.
            F("amount", "number", label="Amount"),
            F("quantity", "number", label="Quantity"),
            F("currency", "dimension", label="Currency"),
            F("status", "dimension", label="Status"),
            F("channel", "dimension", label="Channel"),
            F("product", "dimension", label="Product"),
        ),
    ),
    "events": Table(
        "events",
        key=("customer_id", "occurred_at", "step"),
        label="journey events",
        fields=(
            F("customer_id", "id", required=True, label="Customer ID"),
            F("occurred_at", "timestamp", required=True, label="Occurred at"),
            F("step", "dimension", required=True, label="Step"),
            F("channel", "dimension", label="Channel"),
            F("touchpoint", "dimension", label="Touchpoint"),
            F("session_id", "id", label="Session ID"),
        ),
    ),
    "customers": Table(
        "customers",
        key=("customer_id",),
        label="customers",
        fields=(
            F("customer_id", "id", required=True, label="Customer ID"),
            F("signup_at", "timestamp", label="Signed up at"),
            F("churned_at", "timestamp", label="Churned at"),
            F("tenure", "number", label="Tenure"),
            F("churned", "flag", label="Churned (yes/no)"),
            F("plan", "dimension", label="Plan"),
            F("segment", "dimension", label="Segment"),
            F("region", "dimension", label="Region"),
            F("mrr", "number", label="Monthly revenue"),
        ),
    ),
}
del F

# Columns the import adds beside the canonical fields (scales are per row: exports mix scales).
SCALE_COLUMNS = {
    "responses": (("csat_min", "SMALLINT"), ("csat_max", "SMALLINT"), ("ces_min", "SMALLINT"), ("ces_max", "SMALLINT")),
    "tickets": (("csat_min", "SMALLINT"), ("csat_max", "SMALLINT")),
    "customers": (("tenure_unit", "VARCHAR"),),
}
SQL_TYPES = {
    "id": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "text": "VARCHAR",
    "dimension": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "score": "DOUBLE",
    "flag": "BOOLEAN",
}
BOOKKEEPING_COLUMNS = (("batch_id", "BIGINT NOT NULL"), ("row_hash", "VARCHAR NOT NULL"))
DIMENSION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
RESERVED_NAMES = frozenset(
    {c for t in TABLES.values() for c in t.field_names}
    | {c for cols in SCALE_COLUMNS.values() for c, _ in cols}
    | {c for c, _ in BOOKKEEPING_COLUMNS}
)


def quote_ident(name: str) -> str:
    """Quote an identifier that has already been checked against a whitelist."""
    return '"' + name.replace('"', '""') + '"'


def _table_ddl(table: Table, name: str, primary_key: bool) -> str:
    cols = [f"{quote_ident(f.name)} {SQL_TYPES[f.kind]}" for f in table.fields]
    cols += [f"{c} {t}" for c, t in SCALE_COLUMNS.get(table.name, ())]
    cols += [f"{c} {t}" for c, t in BOOKKEEPING_COLUMNS]
    if primary_key:
        cols.append(f"PRIMARY KEY ({', '.join(table.key)})")
    return f"CREATE TABLE {name} (\n  " + ",\n  ".join(cols) + "\n)"


def _migration_1(cur: duckdb.DuckDBPyConnection) -> None:
    """The five canonical tables, their version history, and the bookkeeping tables."""
    for table in TABLES.values():
        # No PRIMARY KEY constraint: DuckDB's ART index costs memory at tens of millions of rows and
        # the import already guarantees key uniqueness with its own upsert.
        cur.execute(_table_ddl(table, table.name, primary_key=False))
        # Superseded versions of rows, so removing a batch brings back what it overwrote.
        cur.execute(_table_ddl(table, f"{table.name}_history", primary_key=False))
    cur.execute("CREATE SEQUENCE batch_seq START 1")
    cur.execute(
        """CREATE TABLE batches (
            batch_id BIGINT PRIMARY KEY, kind VARCHAR NOT NULL, file_name VARCHAR NOT NULL,
            sha256 VARCHAR, file_format VARCHAR, rows_read BIGINT, added BIGINT, updated BIGINT,
            unchanged BIGINT, duplicates BIGINT, rejected BIGINT, mapping JSON, options JSON,
            imported_at TIMESTAMP NOT NULL)"""
    )
    cur.execute(
        """CREATE TABLE rejects (batch_id BIGINT NOT NULL, row_number BIGINT NOT NULL,
            column_name VARCHAR, value VARCHAR, reason VARCHAR NOT NULL)"""
    )
    cur.execute(
        """CREATE TABLE mappings (signature VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL,
            mapping JSON NOT NULL, options JSON NOT NULL, columns JSON NOT NULL,
            saved_at TIMESTAMP NOT NULL, uses BIGINT NOT NULL DEFAULT 0)"""
    )
    cur.execute("CREATE TABLE settings (key VARCHAR PRIMARY KEY, value JSON NOT NULL)")
    cur.execute(
        """CREATE TABLE dimensions (table_name VARCHAR NOT NULL, column_name VARCHAR NOT NULL,
            label VARCHAR NOT NULL, PRIMARY KEY (table_name, column_name))"""
    )
    cur.execute("CREATE TABLE meta (data_version BIGINT NOT NULL)")
    cur.execute("INSERT INTO meta VALUES (0)")


def _migration_2(cur: duckdb.DuckDBPyConnection) -> None:
    """Voice of the customer: sentiment and language per comment, and the themes each comment carries.

    ``source`` is the canonical table, ``id`` its natural key; ``text_hash`` is md5 of the text that was
    scored, so a score whose row was removed or whose text changed never joins (cx.voice)."""
    # No PRIMARY KEY: cx.voice rewrites both tables whole, and an ART index makes that ~10× slower.
    cur.execute(
        """CREATE TABLE comment_scores (source VARCHAR NOT NULL, id VARCHAR NOT NULL, language VARCHAR,
            sentiment_label VARCHAR, sentiment_score DOUBLE, unscored_reason VARCHAR, model_version VARCHAR,
            text_hash VARCHAR NOT NULL)"""
    )
    cur.execute(
        """CREATE TABLE comment_themes (source VARCHAR NOT NULL, id VARCHAR NOT NULL, theme VARCHAR NOT NULL,
            origin VARCHAR NOT NULL)"""
    )


MIGRATIONS = {1: _migration_1}
MIGRATIONS[2] = _migration_2
SCHEMA_VERSION = max(MIGRATIONS)  # keep after every MIGRATIONS[n] registration


# DuckDB's own default is 80% of the machine's memory, and a funnel over 20 M events took 6.2 GB of it.
# With 1 GB the same funnel peaks at 1.3 GB for the whole process (2.7 s slower, spilling beside the store),
# which keeps the app within the 2 GB it is budgeted. TOUCHPOINT_DUCKDB_MEMORY raises it on a larger machine.
DEFAULT_DUCKDB_MEMORY = "1GB"


_MEMORY_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


def duckdb_memory_limit() -> str:
    """The memory DuckDB may use for its buffers: TOUCHPOINT_DUCKDB_MEMORY, else ``DEFAULT_DUCKDB_MEMORY``."""
    limit = os.environ.get("TOUCHPOINT_DUCKDB_MEMORY", "").strip() or DEFAULT_DUCKDB_MEMORY
    if not _MEMORY_SIZE.match(limit):
        raise TouchpointError(f"TOUCHPOINT_DUCKDB_MEMORY={limit!r} is not an amount of memory.",
                              fix="Use a size such as 1GB, 4GB or 500MB, or unset it for the default (1GB).")
    return limit


def read_data_version(cur: duckdb.DuckDBPyConnection) -> int:
    """The data version as ``cur`` sees it (inside its transaction, the version of what it reads)."""
    return int(cur.execute("SELECT data_version FROM meta").fetchone()[0])


class Store:
    """A Touchpoint store: one DuckDB file, one read-write connection, a cursor per query."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        limit = duckdb_memory_limit()
        try:
            # A setting passed as configuration, not spliced into SQL text.
            self._con = duckdb.connect(str(self.path), config={"memory_limit": limit})
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreBusy(
                    f"The store {self.path} is open in another Touchpoint process.",
                    fix="Close the other app or command that uses it, or point --db / TOUCHPOINT_DB at another file.",
                ) from exc
            raise TouchpointError(
                f"The store {self.path} cannot be opened: {exc}".strip(),
                fix="Choose another --db path, or restore the file from a backup.",
            ) from exc
        except duckdb.Error as exc:
            raise TouchpointError(
                f"{self.path} is not a Touchpoint store ({exc}).",
                fix="Choose another --db path or move that file away.",
            ) from exc
        self._write_lock = threading.RLock()
        self._con.execute("SET TimeZone = 'UTC'")
        self.migrate()

    # -- connections ------------------------------------------------------------------------------
    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for one query or transaction (safe to use from any thread)."""
        cur = self._con.cursor()
        try:
            cur.execute("SET TimeZone = 'UTC'")
            yield cur
        finally:
            cur.close()

    def open_cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor the caller keeps (one per thread, e.g. under an Ibis backend) and closes."""
        cur = self._con.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        return cur

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor inside one write transaction: all of it lands, or none of it."""
        with self._write_lock, self.cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")

    def query_df(self, sql: str, params: Any = None):
        """Run one read query with bound parameters and return a pandas DataFrame."""
        with self.cursor() as cur:
            return cur.execute(sql, params or []).df()

    def close(self) -> None:
        self._con.close()
        _OPEN.pop(self.path.resolve(), None)

    # -- schema -----------------------------------------------------------------------------------
    def schema_version(self) -> int:
        with self.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)"
            )
            return int(cur.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])

    def migrate(self) -> int:
        """Apply every migration newer than the store's schema, each in its own transaction."""
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise TouchpointError(
                f"The store {self.path} was written by a newer Touchpoint (schema {current}, this one knows {SCHEMA_VERSION}).",
                fix="Upgrade Touchpoint, or open another store with --db.",
            )
        for version in sorted(v for v in MIGRATIONS if v > current):
            with self.transaction() as cur:
                MIGRATIONS[version](cur)
                cur.execute("INSERT INTO schema_version VALUES (?, now())", [version])
        return SCHEMA_VERSION

    def columns(self, table: str) -> list[str]:
        """The columns a canonical table has now, including analyst-mapped dimensions."""
        if table not in TABLES:
            raise UnknownDimension(f"There is no table called {table!r}.", fix=f"Use one of {', '.join(TABLES)}.")
        with self.cursor() as cur:
            rows = cur.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main' ORDER BY column_index",
                [table],
            ).fetchall()
        return [r[0] for r in rows]

    def dimensions(self, table: str) -> list[str]:
        """Columns of ``table`` usable as breakdowns: canonical dimensions plus analyst-mapped ones."""
        canonical = [f.name for f in TABLES[table].fields if f.kind == "dimension"]
        with self.cursor() as cur:
            extra = [r[0] for r in cur.execute(
                "SELECT column_name FROM dimensions WHERE table_name = ? ORDER BY column_name", [table]
            ).fetchall()]
        return canonical + [c for c in extra if c not in canonical]

    def add_dimension(self, cur: duckdb.DuckDBPyConnection, table: str, name: str, label: str) -> None:
        """Add an analyst-mapped dimension column to a table and its history (inside a transaction)."""
        if not DIMENSION_NAME.match(name) or name in RESERVED_NAMES:
            raise UnknownDimension(
                f"{name!r} cannot be a dimension name.",
                fix="Use lower-case letters, digits and underscores, starting with a letter, and not a canonical field name.",
            )
        exists = cur.execute(
            "SELECT count(*) FROM dimensions WHERE table_name = ? AND column_name = ?", [table, name]
        ).fetchone()[0]
        if exists:
            return
        for t in (table, f"{table}_history"):
            cur.execute(f"ALTER TABLE {quote_ident(t)} ADD COLUMN {quote_ident(name)} VARCHAR")
        cur.execute("INSERT INTO dimensions VALUES (?, ?, ?)", [table, name, label])

    # -- bookkeeping ------------------------------------------------------------------------------
    def data_version(self) -> int:
        """A number that changes whenever imported data changes (use it in cache keys)."""
        with self.cursor() as cur:
            return read_data_version(cur)

    def row_counts(self) -> dict[str, int]:
        """Rows now in each canonical table."""
        with self.cursor() as cur:
            return {t: int(cur.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}

    def is_empty(self) -> bool:
        with self.cursor() as cur:
            return cur.execute("SELECT count(*) FROM batches").fetchone()[0] == 0

    def get_setting(self, key: str, default: Any = None) -> Any:
        with self.cursor() as cur:
            row = cur.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
        return default if row is None else json.loads(row[0])

    def set_setting(self, key: str, value: Any) -> None:
        with self.transaction() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO settings VALUES (?, ?)", [key, json.dumps(value)]
            )

    def clear_data(self) -> None:
        """Remove every imported row and batch in one transaction (mappings and settings stay)."""
        with self.transaction() as cur:
            for t in TABLES:
                cur.execute(f"DELETE FROM {t}")
                cur.execute(f"DELETE FROM {t}_history")
            cur.execute("DELETE FROM rejects")
            cur.execute("DELETE FROM batches")
            cur.execute("UPDATE meta SET data_version = data_version + 1")

    def checkpoint(self) -> None:
        with self.cursor() as cur:
            cur.execute("CHECKPOINT")

    def check(self) -> "CheckReport":
        """The store's integrity check, in one read transaction: schema version, every table present and
        readable to its last block (DuckDB verifies block checksums as it reads), each natural key held
        once, every row and reject belonging to a batch that exists, and each batch's row accounting
        balanced. Returns the report; ``report.ok`` is False when it lists problems."""
        problems: list[str] = []
        rows: dict[str, int] = {}
        version = self.schema_version()
        if version != SCHEMA_VERSION:
            problems.append(f"schema version {version}, expected {SCHEMA_VERSION}")
        expected = [*TABLES, *(f"{t}_history" for t in TABLES), "batches", "rejects", "mappings", "settings",
                    "dimensions", "meta", "schema_version"]
        with self.cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                present = {r[0] for r in cur.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT temporary").fetchall()}
                for t in expected:
                    if t not in present:
                        problems.append(f"table {t} is missing")
                        continue
                    try:
                        # Hashing every column reads every block of the table.
                        cur.execute(f"SELECT count(*), sum(hash(COLUMNS(*))) FROM {quote_ident(t)}")
                        rows[t] = int(cur.fetchone()[0])
                    except duckdb.Error as exc:
                        problems.append(f"table {t} cannot be read: {str(exc).splitlines()[0]}")
                if not problems:
                    self._check_bookkeeping(cur, problems)
            finally:
                cur.execute("ROLLBACK")
        return CheckReport(ok=not problems, schema_version=version, rows=rows, problems=problems)

    @staticmethod
    def _check_bookkeeping(cur: duckdb.DuckDBPyConnection, problems: list[str]) -> None:
        if cur.execute("SELECT count(*) FROM meta").fetchone()[0] != 1:
            problems.append("table meta must hold exactly one row")
        for name, spec in TABLES.items():
            keys = ", ".join(quote_ident(k) for k in spec.key)
            dup = cur.execute(f"SELECT count(*) FROM (SELECT {keys} FROM {name} GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
            if dup:
                problems.append(f"{dup} keys of {name} are held more than once")
            for t in (name, f"{name}_history"):
                orphans = cur.execute(
                    f"SELECT count(*) FROM {t} WHERE batch_id NOT IN (SELECT batch_id FROM batches)").fetchone()[0]
                if orphans:
                    problems.append(f"{orphans} rows of {t} belong to no batch")
            dims = [r[0] for r in cur.execute(
                "SELECT column_name FROM dimensions WHERE table_name = ?", [name]).fetchall()]
            cols = {r[0] for r in cur.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main'", [name]).fetchall()}
            for d in dims:
                if d not in cols:
                    problems.append(f"dimension {name}.{d} is registered but has no column")
        orphans = cur.execute("SELECT count(*) FROM rejects WHERE batch_id NOT IN (SELECT batch_id FROM batches)").fetchone()[0]
        if orphans:
            problems.append(f"{orphans} rejects belong to no batch")
        unbalanced = cur.execute(
            "SELECT list(batch_id ORDER BY batch_id) FROM batches "
            "WHERE rows_read <> added + updated + unchanged + duplicates + rejected").fetchone()[0]
        if unbalanced:
            problems.append(f"batches {', '.join(map(str, unbalanced))} do not account for every row read")


@dataclass(frozen=True)
class CheckReport:
    """The outcome of ``Store.check()``: rows per table and the problems found (none when ``ok``)."""

    ok: bool
    schema_version: int
    rows: dict[str, int]
    problems: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "schema_version": self.schema_version, "rows": self.rows, "problems": self.problems}


_OPEN: dict[Path, Store] = {}
_OPEN_LOCK = threading.Lock()


def resolve_db_path(path: str | Path | None = None) -> Path:
    """The store path: the argument, else ``TOUCHPOINT_DB``, else ``data/touchpoint.duckdb``."""
    return Path(path or os.environ.get("TOUCHPOINT_DB") or DEFAULT_DB)


def open_store(path: str | Path | None = None) -> Store:
    """The process's one Store for that file, opened (and created or upgraded) on first use."""
    resolved = resolve_db_path(path)
    key = resolved.resolve()
    with _OPEN_LOCK:
        store = _OPEN.get(key)
        if store is None:
            store = _OPEN[key] = Store(resolved)
        return store
