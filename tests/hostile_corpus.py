"""The hostile corpus: broken and hostile export files, one per case, written by ``build(folder)``.

Small files are committed in ``tests/hostile/`` so a person can drop them on the Data page by hand;
large ones (the 10,000-column header, the 1 MB cell, the gzip cut after its first 64 KB) are written at
test time. ``python -m tests.hostile_corpus tests/hostile`` rewrites the small ones; the encrypted
workbook is committed as made once with msoffcrypto-tool (password "secret"), because that tool is not
a dependency.
"""

from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path

HEADER = "response_id,submitted_at,nps"
ENCRYPTED_XLSX = "password-protected.xlsx"


def _xlsx(build) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    build(wb.active)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _formulas(ws) -> None:
    # openpyxl writes formulas without cached results, as many scripts and converters do.
    ws.append(["response_id", "submitted_at", "nps", "comment"])
    ws.append(["r1", "2024-03-01", 9, "=HYPERLINK(\"http://evil.example\",\"click\")"])
    ws.append(["r2", "2024-03-02", "=4+3", "=cmd|' /C calc'!A0"])
    ws.append(["r3", "2024-03-03", 2, "fine"])


def _calculated_formulas() -> bytes:
    # As Excel saves them: each formula with its last calculated result.
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    ws = wb.add_worksheet("Answers")
    for col, name in enumerate(["response_id", "submitted_at", "nps", "comment"]):
        ws.write_string(0, col, name)
    ws.write_row(1, 0, ["r1", "2024-03-01"])
    ws.write_formula(1, 2, "=4+3", None, 7)
    ws.write_formula(1, 3, '=HYPERLINK("http://evil.example","click")', None, "click")
    ws.write_row(2, 0, ["r2", "2024-03-02"])
    ws.write_number(2, 2, 10)
    ws.write_formula(2, 3, "=cmd|' /C calc'!A0", None, "#REF!")
    wb.close()
    return buf.getvalue()


def _merged(ws) -> None:
    # One channel cell merged over three rows, and a date merged over two: only the top-left cell of a
    # merged range holds the value in the file.
    ws.append(["response_id", "submitted_at", "nps", "channel"])
    ws.append(["r1", "2024-03-01", 10, "web"])
    ws.append(["r2", None, 8, None])
    ws.append(["r3", "2024-03-03", 3, None])
    ws.merge_cells("D2:D4")
    ws.merge_cells("B2:B3")


def _duckdb_parquet(select: str) -> bytes:
    import tempfile

    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.parquet"
        con = duckdb.connect()
        try:
            con.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")
        finally:
            con.close()
        return path.read_bytes()


def _parquet_nested() -> bytes:
    # Types no export column maps to: a struct, a list, a map, an interval, raw bytes and a union.
    return _duckdb_parquet(
        "SELECT * FROM (VALUES "
        "('r1', TIMESTAMP '2024-03-01 10:00', 9::TINYINT, {'q1': 1, 'q2': 'x'}, ['a', 'b'], MAP {'k': 1}, "
        " INTERVAL '1 month 2 days 3 seconds', '\\x00\\x01'::BLOB), "
        "('r2', TIMESTAMP '2024-03-02 10:00', 4::TINYINT, {'q1': 2, 'q2': 'y'}, [], MAP {}, INTERVAL '0 seconds', "
        " '\\xFF'::BLOB), "
        "('r3', TIMESTAMP '2024-03-03 10:00', 10::TINYINT, NULL, NULL, NULL, NULL, NULL)) "
        "t(response_id, submitted_at, nps, answers, tags, attrs, wait, blob)"
    )


def _parquet_list_scores() -> bytes:
    return _duckdb_parquet(
        "SELECT * FROM (VALUES ('r1', '2024-03-01', [9, 10]), ('r2', '2024-03-02', [3])) t(response_id, submitted_at, nps)"
    )


def small_files() -> dict[str, bytes]:
    """Every case small enough to commit, by file name."""
    utf8_part = f"{HEADER},comment\nr1,2024-03-01,9,Très bien\n".encode()
    cp1252_part = "r2,2024-03-02,7,Crème brûlée à emporter\n".encode("cp1252")
    return {
        "empty.csv": b"",
        "header-only.csv": f"{HEADER}\n".encode(),
        "binary-renamed.csv": b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 16,
        "truncated.csv.gz": gzip.compress((HEADER + "\n" + "r1,2024-01-01,9\n" * 5000).encode(), mtime=0)[:120],
        "mixed-encodings.csv": utf8_part + cp1252_part + "r3,2024-03-03,10,Merci à vous\n".encode(),
        "utf16-no-bom.csv": f"{HEADER},comment\nr1,2024-03-01,9,Grüße\nr2,2024-03-02,6,naïve\n".encode("utf-16-le"),
        "ragged-rows.csv": (f"{HEADER},channel\n"
                            "r1,2024-03-01,9,web\n"
                            "r2,2024-03-02,8\n"           # one value short
                            "r3,2024-03-03,7,app,extra\n"  # one value too many
                            "r4,2024-03-04,6,app\n").encode(),
        "duplicate-headers.csv": b"response_id,submitted_at,nps,nps\nr1,2024-03-01,9,3\n",
        "blank-headers.csv": b"response_id,,submitted_at,,nps\nr1,x,2024-03-01,y,9\nr2,z,2024-03-02,,3\n",
        "formulas.xlsx": _xlsx(_formulas),
        "formulas-calculated.xlsx": _calculated_formulas(),
        "merged-cells.xlsx": _xlsx(_merged),
        "not-records.json": b'"just a string"',
        "number.json": b"42",
        "array-of-arrays.json": b'[["r1", "2024-03-01", 9], ["r2", "2024-03-02", 3]]',
        "wrapped-records.json": b'{"meta": {"count": 1}, "results": [{"response_id": "r1", "nps": 9}]}',
        "nested-types.parquet": _parquet_nested(),
        "list-scores.parquet": _parquet_list_scores(),
        "extreme-dates.csv": (f"{HEADER}\n"
                              "r1,0001-01-01,9\n"
                              "r2,9999-12-31 23:59:59,8\n"
                              "r3,2024-03-03,7\n").encode(),
        "scores-as-text.csv": (f"{HEADER},csat\n"
                               "r1,2024-03-01,ten,5\n"
                               "r2,2024-03-02,9,five\n"
                               "r3,2024-03-03,8,4\n").encode(),
        "negative-money.csv": ("order_id,customer_id,ordered_at,amount\n"
                               "o1,c1,2024-03-01,19.90\n"
                               "o2,c1,2024-03-02,-19.90\n"
                               "o3,c2,2024-03-03,-0.01\n"
                               "o4,c2,2024-03-04,5\n").encode(),
        "sql-headers.csv": ('response_id,submitted_at,nps,"Region""; DROP TABLE responses; --",'
                            '"x\'); DELETE FROM batches; --","a;b"\n'
                            'r1,2024-03-01,9,"EU\'; DROP TABLE batches; --","1 OR 1=1","/* c */"\n').encode(),
    }


def wide_header(columns: int = 10_000) -> bytes:
    """A header of ``columns`` names (the three real ones first) and two data rows."""
    names = ["response_id", "submitted_at", "nps"] + [f"q{i}" for i in range(columns - 3)]
    row1 = ["r1", "2024-03-01", "9"] + ["1"] * (columns - 3)
    row2 = ["r2", "2024-03-02", "3"] + [""] * (columns - 3)
    return ("\n".join(",".join(r) for r in (names, row1, row2)) + "\n").encode()


def huge_cell(size: int = 1 << 20) -> bytes:
    """One response whose comment is ``size`` bytes long, and one ordinary response."""
    return f"{HEADER},comment\nr1,2024-03-01,9,{'x' * size}\nr2,2024-03-02,3,short\n".encode()


def late_truncated_gzip() -> bytes:
    """A gzip whose first 64 KB decompress fine and whose end is missing."""
    text = HEADER + "\n" + "".join(f"t{i},2024-01-01,{i % 11}\n" for i in range(200_000))
    whole = gzip.compress(text.encode(), mtime=0)
    return whole[: len(whole) - 2000]


def large_files() -> dict[str, bytes]:
    return {"wide-10000-columns.csv": wide_header(), "one-mb-cell.csv": huge_cell(),
            "truncated-late.csv.gz": late_truncated_gzip()}


def build(folder: Path, large: bool = True) -> dict[str, Path]:
    """Write the corpus into ``folder`` (the committed encrypted workbook is copied); return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {**small_files(), **(large_files() if large else {})}
    out = {}
    for name, content in files.items():
        (folder / name).write_bytes(content)
        out[name] = folder / name
    committed = Path(__file__).parent / "hostile" / ENCRYPTED_XLSX
    if committed.exists() and folder.resolve() != committed.parent.resolve():
        (folder / ENCRYPTED_XLSX).write_bytes(committed.read_bytes())
    out[ENCRYPTED_XLSX] = folder / ENCRYPTED_XLSX
    return out


if __name__ == "__main__":
    build(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "hostile"), large=False)
