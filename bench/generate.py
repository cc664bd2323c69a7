"""Benchmark data: the demo data set at scale, written straight into Touchpoint stores in a cache folder.

The demo generator (``cx.demo.generate(seed=7, scale=1)``: 5,000 customers, 22,865 responses, 9,870
tickets, 36,105 orders, 79,879 events) is the seed. Each size is made from it in DuckDB SQL alone:
row ``i`` of a table of ``N`` rows copies seed row ``s = i · n_seed // N`` (so every seed row is
repeated N / n_seed times, in the seed's chronological order, and its joint distributions — scores by
channel and segment, the app-release drop, seasonality, ticket times, comment themes — are the
demo's), renamed to one of ``K`` copies of its customer and shifted by a deterministic, hash-based
offset of at most ±6 hours that is shared by all rows of one customer copy (so a journey's steps stay
in order). No Python loop touches a row.

Sizes (responses / tickets / orders / events / customers)::

    toy    2,000 /       200 /     1,000 /      4,000 /     5,000
    100k   100,000 /  10,000 /    50,000 /    200,000 /    10,000
    1m     1,000,000 / 100,000 /   500,000 /  2,000,000 /   100,000
    10m    10,000,000 / 1,000,000 / 5,000,000 / 20,000,000 / 1,000,000

A store is written once to ``<cache>/store-<size>.duckdb`` and reused while its recorded recipe
version matches. ``python -m bench.generate 100k 1m`` builds sizes from the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

CACHE = Path(os.environ.get("TOUCHPOINT_BENCH_CACHE") or Path(__file__).resolve().parent / ".cache")
RECIPE = 1  # bump when the recipe below changes, so cached stores are rebuilt
SEED = 7
# rows per table, per size
SIZES: dict[str, dict[str, int]] = {
    "toy": {"responses": 2_000, "tickets": 200, "orders": 1_000, "events": 4_000, "customers": 5_000},
    "100k": {"responses": 100_000, "tickets": 10_000, "orders": 50_000, "events": 200_000, "customers": 10_000},
    "1m": {"responses": 1_000_000, "tickets": 100_000, "orders": 500_000, "events": 2_000_000, "customers": 100_000},
    "10m": {"responses": 10_000_000, "tickets": 1_000_000, "orders": 5_000_000, "events": 20_000_000,
            "customers": 1_000_000},
}
SEED_CUSTOMERS = 5_000
TABLE_ORDER = ("customers", "orders", "tickets", "responses", "events")
ID_PREFIX = {"responses": ("response_id", "R"), "tickets": ("ticket_id", "T"), "orders": ("order_id", "O")}
TIME_COLUMNS = {"responses": ("submitted_at",), "tickets": ("created_at", "first_response_at", "resolved_at"),
                "orders": ("ordered_at",), "events": ("occurred_at",), "customers": ("signup_at", "churned_at")}
SHIFT_SECONDS = 6 * 3600


def store_path(size: str, cache: Path = CACHE) -> Path:
    return cache / f"store-{size}.duckdb"


def _seed_tables(cur) -> dict[str, int]:
    """The demo frames as temporary ``seed_<table>`` tables with a row number ``s`` (chronological)
    and the customer's index ``cidx``; returns each table's row count."""
    from cx import demo

    frames = demo.generate(seed=SEED, scale=1.0)
    counts = {}
    for name, frame in frames.items():
        cur.register(f"frame_{name}", frame)
        time_col = TIME_COLUMNS[name][0]
        cur.execute(
            f"CREATE TEMP TABLE seed_{name} AS SELECT row_number() OVER (ORDER BY {time_col}, customer_id) - 1 AS s, "
            f"CAST(substr(customer_id, 2) AS BIGINT) - 1 AS cidx, * FROM frame_{name}")
        cur.unregister(f"frame_{name}")
        counts[name] = len(frame)
    return counts


def _select(table: str, columns: list[str], n: int, n_seed: int, k: int, seed_columns: set[str]) -> str:
    """SELECT of ``n`` rows of ``table`` built from its seed (see the module docstring)."""
    from cx.store import SQL_TYPES, TABLES

    spec = TABLES[table]
    kinds = {f.name: f.kind for f in spec.fields}
    out = []
    for c in columns:
        if c not in seed_columns | {"batch_id", "row_hash"}:  # a field the demo leaves empty
            out.append(f"CAST(NULL AS {SQL_TYPES.get(kinds.get(c, 'text'), 'VARCHAR')}) AS {c}")
        elif c == "batch_id":
            out.append("$batch AS batch_id")
        elif c == "row_hash":
            out.append(f"printf('%016x', hash(g.i, '{table}')) AS row_hash")
        elif c == "customer_id":
            out.append("'C' || lpad(CAST(g.cust + 1 AS VARCHAR), 8, '0') AS customer_id")
        elif table in ID_PREFIX and c == ID_PREFIX[table][0]:
            out.append(f"'{ID_PREFIX[table][1]}' || lpad(CAST(g.i + 1 AS VARCHAR), 9, '0') AS {c}")
        elif c in TIME_COLUMNS[table]:
            out.append(f"CAST(x.{c} AS TIMESTAMP) + to_seconds(g.shift) AS {c}")
        elif c == "session_id":
            out.append("x.session_id || '-' || CAST(g.r AS VARCHAR) AS session_id")
        elif c == "order_id" and table == "responses":
            out.append("CASE WHEN x.order_id IS NULL THEN NULL ELSE x.order_id || '-' || CAST(g.r AS VARCHAR) END "
                       "AS order_id")
        elif c in ("csat_min", "csat_max", "ces_min", "ces_max"):
            out.append(f"CAST(x.{c} AS SMALLINT) AS {c}")
        elif kinds.get(c) in ("score", "number"):
            out.append(f"CAST(x.{c} AS DOUBLE) AS {c}")
        elif kinds.get(c) == "integer":
            out.append(f"CAST(x.{c} AS BIGINT) AS {c}")
        else:
            out.append(f"x.{c}")
    if table == "customers":
        # Every seed customer k times, as customers cidx·k … cidx·k + k − 1.
        rows = (f"SELECT x.s AS s, r.range AS r, x.cidx * {k} + r.range AS cust, x.s * {k} + r.range AS i "
                f"FROM seed_customers x CROSS JOIN range({k}) r")
    else:
        # Row i copies seed row s = i·n_seed // n; r counts the copies of s; the customer is one of k copies.
        rows = (f"SELECT i, s, i - (s * {n} + {n_seed} - 1) // {n_seed} AS r FROM "
                f"(SELECT range AS i, range * {n_seed} // {n} AS s FROM range({n}))")
        rows = (f"SELECT q.i, q.s, q.r, x.cidx * {k} + q.r % {k} AS cust FROM ({rows}) q "
                f"JOIN seed_{table} x USING (s)")
    shift = f"CAST(hash(cust, r // {k}) % {2 * SHIFT_SECONDS + 1} AS BIGINT) - {SHIFT_SECONDS}"
    return (f"SELECT {', '.join(out)} FROM (SELECT *, CAST({shift} AS BIGINT) AS shift FROM ({rows})) g "
            f"JOIN seed_{table} x USING (s) ORDER BY g.i")


def build(size: str, cache: Path = CACHE, *, force: bool = False, log=print) -> Path:
    """The store of ``size``, built unless a finished one of the same recipe is cached."""
    from cx.store import Store, TABLES

    path = store_path(size, cache)
    marker = path.with_suffix(".done")
    if not force and path.exists() and marker.exists() and marker.read_text().strip() == str(RECIPE):
        return path
    cache.mkdir(parents=True, exist_ok=True)
    for p in (path, path.with_suffix(".duckdb.wal"), marker):
        p.unlink(missing_ok=True)
    rows = SIZES[size]
    t0 = time.perf_counter()
    store = Store(path)
    try:
        with store.cursor() as cur:
            cur.execute("SET preserve_insertion_order = true")
            n_seed = _seed_tables(cur)
            k = max(1, rows["customers"] // SEED_CUSTOMERS)
            for table in TABLE_ORDER:
                n = n_seed[table] * k if table == "customers" else rows[table]
                columns = [r[0] for r in cur.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main' "
                    "ORDER BY column_index", [table]).fetchall()]
                seed_cols = {r[0] for r in cur.execute(f"DESCRIBE seed_{table}").fetchall()}
                batch = int(cur.execute("SELECT nextval('batch_seq')").fetchone()[0])
                t1 = time.perf_counter()
                cur.execute("BEGIN TRANSACTION")
                cur.execute(f"INSERT INTO {table} ({', '.join(columns)}) "
                            + _select(table, columns, n, n_seed[table], k, seed_cols), {"batch": batch})
                added = int(cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                cur.execute("INSERT INTO batches VALUES (?, ?, ?, NULL, 'generated', ?, ?, 0, 0, 0, 0, '{}', '{}', now())",
                            [batch, table, f"bench-{size}-{table}", added, added])
                cur.execute("UPDATE meta SET data_version = data_version + 1")
                cur.execute("COMMIT")
                log(f"  {size}: {table:<9} {added:>12,} rows in {time.perf_counter() - t1:6.1f} s")
            assert set(TABLE_ORDER) == set(TABLES)
        store.checkpoint()
    finally:
        store.close()
    marker.write_text(str(RECIPE))
    log(f"  {size}: store {path} ({path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t0:.1f} s")
    return path


def export_files(size: str, cache: Path = CACHE, log=print) -> dict[str, Path]:
    """Export files of the responses of ``size`` for the import benchmark: CSV, CSV.gz, Parquet
    (and XLSX, only for sizes up to 100k rows: spreadsheets are not a 1 M-row format)."""
    import duckdb

    from cx.store import TABLES

    folder = cache / f"files-{size}"
    folder.mkdir(parents=True, exist_ok=True)
    cols = ", ".join(TABLES["responses"].field_names)
    out = {"csv": folder / "responses.csv", "csv.gz": folder / "responses.csv.gz",
           "parquet": folder / "responses.parquet"}
    if SIZES[size]["responses"] <= 100_000:
        out["xlsx"] = folder / "responses.xlsx"
    src = build(size, cache, log=log)
    con = None
    try:
        for fmt, path in out.items():
            if path.exists():
                continue
            if con is None:
                con = duckdb.connect(str(src), read_only=True)
            sql = f"SELECT {cols} FROM responses ORDER BY response_id"
            tmp = path.with_name(path.name + ".tmp")
            if fmt == "csv":
                con.execute(f"COPY ({sql}) TO '{tmp}' (HEADER, DELIMITER ',', FORMAT csv)")
            elif fmt == "csv.gz":
                con.execute(f"COPY ({sql}) TO '{tmp}' (HEADER, DELIMITER ',', FORMAT csv, COMPRESSION gzip)")
            elif fmt == "parquet":
                con.execute(f"COPY ({sql}) TO '{tmp}' (FORMAT parquet)")
            else:
                _write_xlsx(con.execute(sql).df(), tmp)
            tmp.rename(path)
            log(f"  {size}: wrote {path.name} ({path.stat().st_size / 1e6:,.1f} MB)")
    finally:
        if con is not None:
            con.close()
    return out


def _write_xlsx(frame, path: Path) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_formulas": False,
                                         "strings_to_urls": False})
    ws = wb.add_worksheet("responses")
    ws.write_row(0, 0, list(frame.columns))
    for r, row in enumerate(frame.astype(object).itertuples(index=False), start=1):
        ws.write_row(r, 0, ["" if v is None or v != v else (str(v) if hasattr(v, "isoformat") else v) for v in row])
    wb.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", default=["100k"], choices=list(SIZES))
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.add_argument("--files", action="store_true", help="also write the import benchmark files")
    args = parser.parse_args(argv)
    for size in args.sizes:
        build(size, force=args.force)
        if args.files:
            export_files(size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
