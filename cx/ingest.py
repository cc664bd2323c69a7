"""Import of export files into the store: read natively with DuckDB, map columns, validate, upsert.

The flow of one import (one transaction):

1. ``read``: detect the format and encoding, and load the file as text into a temporary table whose
   columns are named ``c0, c1, …`` (so no name from the file is ever spliced into SQL).
2. ``map``: each canonical field is fed by one source column (auto-proposed from header synonyms and
   value profiles, confirmed or edited by the analyst, saved under the header's signature).
3. ``parse``: text becomes typed values under explicit conventions (date order, time zone, null
   markers, decimal separator, scales); every problem becomes a reject with row, column, value and
   reason.
4. ``upsert``: rows replace earlier versions with the same natural key (the replaced version moves to
   ``<table>_history`` so removing the batch brings it back); identical rows change nothing.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import os
import re
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable
from zlib import error as zlib_error

import duckdb
import pandas as pd

from cx.errors import AmbiguousValues, MappingError, TouchpointError, UnknownBatch, UnknownFormat, UnreadableFile
from cx.store import SCALE_COLUMNS, TABLES, Store, quote_ident

KINDS = tuple(TABLES)
DEFAULT_NULLS = ("", "?", "N/A", "n/a", "NULL", "null", "None", "none", "-", "--", "#N/A", "NaN", "nan", "(blank)")
SAMPLE_ROWS = 20_000
MAX_EXTRA_DIMENSIONS = 100
# Profiling and mapping cost grows with the column count: beyond this a file is refused before it is read.
MAX_COLUMNS = 2_000
TEXT_EXTENSIONS = {".csv", ".tsv", ".txt", ".tab", ".dat", ".psv"}
JSON_EXTENSIONS = {".json", ".ndjson", ".jsonl"}
EXCEL_EXTENSIONS = {".xlsx", ".xlsm", ".xls", ".xlsb", ".ods"}
DEFAULT_SCALES = {"csat": (1, 5), "ces": (1, 7)}
STANDARD_SCALES = ((1, 5), (1, 7), (1, 10), (0, 10), (0, 100))
SCALE_COVERAGE = 0.95  # share of values a detected scale must hold; the rest are rejected as typos
EARLIEST, LATEST = "1900-01-01", "2100-01-01"
Progress = Callable[[float, str], None]


# ------------------------------------------------------------------------------------------------
# Value conventions
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    """How raw text becomes values. ``None`` means "detect from the data"."""

    date_order: str | None = None  # dmy | mdy | ymd, for dates like 03/04/2024
    timezone: str = "UTC"  # zone of timestamps written without an offset
    decimal: str | None = None  # "." or ","
    null_markers: tuple[str, ...] = DEFAULT_NULLS
    csat_scale: tuple[int, int] | None = None
    ces_scale: tuple[int, int] | None = None
    tenure_unit: str = "month"

    def replace(self, **changes: Any) -> "Options":
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Options":
        data = dict(data or {})
        known = {f for f in cls.__dataclass_fields__}
        clean: dict[str, Any] = {}
        for k, v in data.items():
            if k not in known:
                raise MappingError(f"Unknown import option {k!r}.", fix=f"Use one of: {', '.join(sorted(known))}.")
            if k in ("csat_scale", "ces_scale", "null_markers") and v is not None:
                v = tuple(v)
            clean[k] = v
        return cls(**clean)._checked()

    @classmethod
    def from_strings(cls, pairs: dict[str, str]) -> "Options":
        """Options from command-line text: ``csat_scale=1-5``, ``nulls=?|N/A``, ``decimal=,``."""
        data: dict[str, Any] = {}
        for k, v in pairs.items():
            if k in ("csat_scale", "ces_scale"):
                m = re.fullmatch(r"\s*(-?\d+)\s*[-–:]\s*(\d+)\s*", v)
                if not m:
                    raise MappingError(f"{k}={v!r} is not a scale.", fix=f"Write it as {k}=1-5.")
                data[k] = (int(m.group(1)), int(m.group(2)))
            elif k in ("nulls", "null_markers"):
                data["null_markers"] = tuple(DEFAULT_NULLS) + tuple(s for s in v.split("|"))
            else:
                data[k] = v
        return cls.from_dict(data)

    def _checked(self) -> "Options":
        if self.date_order not in (None, "dmy", "mdy", "ymd"):
            raise MappingError(f"Date order {self.date_order!r} is not known.", fix="Use dmy, mdy or ymd.")
        if self.decimal not in (None, ".", ","):
            raise MappingError(f"Decimal separator {self.decimal!r} is not supported.", fix="Use '.' or ','.")
        if self.tenure_unit not in ("day", "week", "month", "year"):
            raise MappingError(f"Tenure unit {self.tenure_unit!r} is not known.", fix="Use day, week, month or year.")
        for name in ("csat_scale", "ces_scale"):
            scale = getattr(self, name)
            if scale is not None and not (len(scale) == 2 and scale[0] < scale[1]):
                raise MappingError(f"{name} {scale!r} is not a scale.", fix="Give the lowest and highest score, e.g. 1-5.")
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.timezone)
        except Exception as exc:  # noqa: BLE001 - any failure means the name is unusable
            raise MappingError(f"Time zone {self.timezone!r} is not known.", fix="Use an IANA name such as Europe/Paris or UTC.") from exc
        return self


# ------------------------------------------------------------------------------------------------
# Header synonyms: how exports of common tools name each canonical field
# ------------------------------------------------------------------------------------------------
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "responses": {
        "response_id": ("response id", "responseid", "response", "review id", "survey response id", "respondent id",
                        "submission id", "token", "id"),
        "submitted_at": ("submitted at", "submitted", "submit date", "date submitted", "recorded date", "end date",
                         "response date", "completed at", "created at", "timestamp", "date", "review creation date",
                         "survey date", "responded at", "start date", "created"),
        "customer_id": ("customer id", "customer", "user id", "contact id", "person id", "email", "customer email",
                        "external reference", "external data reference", "client id", "account id"),
        "order_id": ("order id", "order", "order number", "transaction id", "purchase id"),
        "nps": ("nps", "nps score", "score", "likelihood to recommend", "how likely are you to recommend",
                "recommend", "rating nps", "net promoter score", "ltr", "likely to recommend"),
        "csat": ("csat", "csat score", "satisfaction", "satisfaction score", "review score", "rating", "stars",
                 "overall satisfaction", "how satisfied"),
        "ces": ("ces", "ces score", "customer effort", "effort", "effort score", "ease", "how easy"),
        "comment": ("comment", "comments", "feedback", "review comment message", "review text", "text", "verbatim",
                    "open text", "why", "reason", "what is the reason for your score", "message", "review",
                    "response text", "answer"),
        "survey": ("survey", "survey name", "survey type", "questionnaire"),
        "channel": ("channel", "source", "medium", "contact type", "distribution channel"),
        "touchpoint": ("touchpoint", "touch point", "interaction", "trigger"),
        "journey_stage": ("journey stage", "stage", "lifecycle stage", "phase"),
        "segment": ("segment", "customer segment", "tier"),
        "region": ("region", "country", "state", "market", "geo", "location"),
        "product": ("product", "product name", "product category", "sku"),
        "language": ("language", "lang", "locale"),
    },
    "tickets": {
        "ticket_id": ("ticket id", "ticket", "id", "case id", "case number", "incident", "number", "conversation id",
                      "issue id", "ticket number"),
        "created_at": ("created at", "created", "opened at", "opened", "date created", "created date",
                       "sys created at", "submitted at", "request date", "created time"),
        "customer_id": ("customer id", "requester id", "requester", "caller id", "caller", "contact id", "user id",
                        "customer", "requester email", "contact"),
        "first_response_at": ("first response at", "first reply at", "first responded at", "first response time",
                              "initial response time", "first reply time", "first agent reply at"),
        "resolved_at": ("resolved at", "solved at", "closed at", "resolved", "closed", "resolution date",
                        "resolved time", "closed time", "solved"),
        "status": ("status", "state", "incident state", "ticket status"),
        "channel": ("channel", "via", "source", "contact type", "medium"),
        "priority": ("priority", "urgency", "severity"),
        "team": ("team", "group", "assignment group", "assignee group", "department"),
        "category": ("category", "type", "ticket type", "issue type", "topic"),
        "reopens": ("reopens", "reopen count", "reopened", "times reopened"),
        "agent_replies": ("agent replies", "replies", "number of replies", "agent responses"),
        "csat": ("satisfaction score", "csat", "satisfaction rating", "rating"),
        "subject": ("subject", "title", "summary", "short description"),
        "description": ("description", "body", "details", "message", "text"),
    },
    "orders": {
        "order_id": ("order id", "order", "order number", "invoice", "invoice no", "invoiceno", "transaction id",
                     "name", "id", "receipt id"),
        "customer_id": ("customer id", "customer", "customerid", "user id", "email", "client id", "buyer id",
                        "account id", "contact id"),
        "ordered_at": ("ordered at", "order date", "created at", "date", "invoice date", "invoicedate",
                       "purchase date", "order purchase timestamp", "transaction date", "processed at", "paid at"),
        "amount": ("amount", "total", "order total", "total price", "revenue", "sales", "value", "dollar value",
                   "payment value", "price", "subtotal", "net sales", "grand total"),
        "quantity": ("quantity", "qty", "units", "number of items", "number of cds", "items"),
        "currency": ("currency", "currency code"),
        "status": ("status", "order status", "financial status", "fulfillment status"),
        "channel": ("channel", "source", "sales channel"),
        "product": ("product", "product name", "sku", "description", "lineitem name", "stockcode"),
    },
    "events": {
        "customer_id": ("customer id", "user id", "case id", "case", "visitor id", "distinct id", "person id",
                        "anonymous id", "customer", "account id"),
        "occurred_at": ("occurred at", "timestamp", "time", "event time", "time timestamp", "date", "event date",
                        "created at", "datetime"),
        "step": ("step", "event", "event name", "activity", "concept name", "action", "page", "stage"),
        "channel": ("channel", "source", "platform", "device"),
        "touchpoint": ("touchpoint", "touch point", "screen", "page name"),
        "session_id": ("session id", "session"),
    },
    "customers": {
        "customer_id": ("customer id", "customerid", "customer", "id", "user id", "account id", "client id"),
        "signup_at": ("signup at", "signed up at", "signup date", "created at", "start date", "join date",
                      "customer since", "subscription start", "first order date"),
        "churned_at": ("churned at", "churn date", "cancelled at", "canceled at", "cancellation date", "end date",
                       "subscription end"),
        "tenure": ("tenure", "tenure months", "months", "lifetime", "months as customer"),
        "churned": ("churned", "churn", "is churned", "cancelled", "exited", "attrition", "churn label"),
        "plan": ("plan", "contract", "subscription", "tier", "product"),
        "segment": ("segment", "customer segment", "type"),
        "region": ("region", "country", "state", "city", "market", "geography"),
        "mrr": ("mrr", "monthly charges", "monthly revenue", "monthly fee", "arpu"),
    },
}


def normalise_header(name: str) -> str:
    """A header as words: ``"Order_Purchase-Timestamp"`` → ``"order purchase timestamp"``."""
    s = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name))
    s = re.sub(r"[^0-9A-Za-z]+", " ", s).strip().lower()
    return re.sub(r"\s+", " ", s)


def slugify(name: str) -> str:
    """A dimension column name made from a header (lower-case, underscores)."""
    s = normalise_header(name).replace(" ", "_") or "column"
    if not s[0].isalpha() or re.fullmatch(r"c\d+", s):
        s = "d_" + s
    return s[:48]


def header_signature(columns: Iterable[str], has_header: bool = True) -> str:
    """The key under which a confirmed mapping is saved: the header, normalised, hashed."""
    cols = list(columns)
    text = "|".join(normalise_header(c) for c in cols) if has_header else f"noheader:{len(cols)}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# ------------------------------------------------------------------------------------------------
# Reading: any export into a text table raw(c0, c1, …) on a cursor
# ------------------------------------------------------------------------------------------------
@dataclass
class RawFile:
    """What was read: source column names (the header, or column1… when there is none) and how."""

    path: Path
    file_format: str
    columns: list[str]
    rows: int
    encoding: str = "utf-8"
    delimiter: str | None = None
    has_header: bool = True
    sheet: str | None = None
    sheets: list[str] = field(default_factory=list)
    header_row: int | None = None
    parse_rejects: list[tuple[int, str | None, str, str]] = field(default_factory=list)
    temp_paths: list[Path] = field(default_factory=list)
    nested: dict[str, str] = field(default_factory=dict)  # column -> type, for lists, structs and maps
    notes: list[str] = field(default_factory=list)  # what the reader noticed and the analyst should know

    def cleanup(self) -> None:
        for p in self.temp_paths:
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def _head(path: Path, size: int = 65536) -> tuple[bytes, bool]:
    """The first bytes of the file (decompressed if it is gzip) and whether it is gzip."""
    with open(path, "rb") as fh:
        start = fh.read(size)
    if start[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                return gz.read(size), True
        except (OSError, EOFError) as exc:
            raise UnreadableFile(
                f"{path.name} is a damaged gzip file ({exc}).", fix="Export or compress the file again."
            ) from exc
    return start, False


def _detect_encoding(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8"
    if head.startswith(codecs.BOM_UTF16_LE) or head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16"
    sample = head[:4000]
    if sample and sample.count(b"\x00") > len(sample) // 4:
        # UTF-16 without a byte-order mark: every other byte of ASCII text is zero.
        even_zeros = sample[0::2].count(0)
        odd_zeros = sample[1::2].count(0)
        if odd_zeros > len(sample) // 4 and even_zeros < odd_zeros // 4:
            return "utf-16-le"
        if even_zeros > len(sample) // 4 and odd_zeros < even_zeros // 4:
            return "utf-16-be"
        return "binary"
    if b"\x00" in sample:
        return "binary"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if _mixed_utf8(head):
        return "utf-8"  # read as UTF-8; the lines that are not fall back to Windows-1252 one by one
    # Windows-1252 (a superset of Latin-1 for printable text) is what Excel on Windows writes. On short
    # samples charset_normalizer often prefers a Baltic or Central European code page for Western
    # text ("Crème" read as "Crčme"), so Windows-1252 wins whenever it reads as plausible words.
    if _plausible_cp1252(head):
        return "cp1252"
    from charset_normalizer import from_bytes

    best = from_bytes(head).best()
    if best is None:
        return "binary"
    enc = best.encoding.lower().replace("_", "-")
    return "cp1252" if enc in ("latin-1", "iso8859-1", "iso-8859-1", "ascii", "cp1252", "windows-1252") else enc


def _mixed_utf8(head: bytes) -> bool:
    """Whether some lines with accented letters are UTF-8 while others are not: a file concatenated
    from exports of different tools, which must be decoded line by line, not all in one code page."""
    lines = head.split(b"\n")[:-1] or [head]
    accented = [ln for ln in lines if max(ln, default=0) >= 0x80]
    good = 0
    for ln in accented:
        try:
            ln.decode("utf-8")
            good += 1
        except UnicodeDecodeError:
            pass
    return 0 < good < len(accented)


# Punctuation that legitimately sits between two letters ("l’été", "Jean–Luc").
_INNER_PUNCTUATION = frozenset("’‘–—·")


def _plausible_cp1252(head: bytes) -> bool:
    """Whether the bytes decode as Windows-1252 into text whose non-ASCII characters inside words are
    letters. Text of another code page decoded as Windows-1252 puts symbols inside words
    ("Za¿ó³æ" for Polish "Zażółć" in Windows-1250)."""
    try:
        text = head.decode("cp1252")
    except UnicodeDecodeError:  # bytes 0x81, 0x8D, 0x8F, 0x90, 0x9D are undefined in Windows-1252
        return False
    for i, ch in enumerate(text):
        if ord(ch) < 128 or ch.isalpha() or ch in _INNER_PUNCTUATION:
            continue
        before = text[i - 1] if i else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        if before.isalpha() and after.isalpha():
            return False
    # Cyrillic or Greek read as Windows-1252 becomes words made wholly of accented letters ("Ïðèâåò");
    # Western words carry an accent or two among plain letters ("élève", "São").
    whole = mixed = 0
    for word in re.findall(r"[^\W\d_]{3,}", text):
        if all(ord(c) >= 128 for c in word):
            whole += 1
        elif any(ord(c) >= 128 for c in word):
            mixed += 1
    return whole <= mixed


def _detect_format(path: Path, head: bytes, gz: bool) -> str:
    name = path.name.lower()
    ext = Path(name[:-3] if name.endswith(".gz") else name).suffix
    if not gz and head.startswith(b"PAR1"):
        return "parquet"
    if not gz and head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile as exc:
            raise UnreadableFile(f"{path.name} is a damaged zip/Excel file.", fix="Save it again from Excel.") from exc
        if any(n.startswith("xl/") for n in names) or any(n == "content.xml" for n in names):
            return "excel"
        raise UnknownFormat(
            f"{path.name} is a zip archive, not a spreadsheet.", fix="Unzip it and import the CSV or Excel file inside."
        )
    if not gz and head.startswith(b"\xd0\xcf\x11\xe0"):
        if ext == ".xls":
            return "excel"
        raise UnreadableFile(
            f"{path.name} is an encrypted or legacy Office file (it may be password-protected).",
            fix="Open it in Excel, remove the password (File → Info → Protect Workbook) and save as .xlsx or CSV.",
        )
    if ext in EXCEL_EXTENSIONS and not gz:
        raise UnreadableFile(f"{path.name} is named like an Excel file but is not one.", fix="Save it again from Excel as .xlsx.")
    if ext == ".parquet":
        raise UnreadableFile(f"{path.name} is named .parquet but is not a Parquet file.", fix="Export it again.")
    enc = _detect_encoding(head)
    if enc == "binary":
        raise UnreadableFile(
            f"{path.name} looks like a binary file, not a text export.",
            fix="Export the data as CSV, Excel, Parquet or JSON and import that file.",
        )
    text = head.decode(enc if not enc.startswith("utf-16") else enc, errors="ignore").lstrip("\ufeff \t\r\n")
    if ext in JSON_EXTENSIONS or text[:1] in ("[", "{"):
        return "json"
    if ext in TEXT_EXTENSIONS or ext == "" or gz:
        return "text"
    return "text"


def _transcode(path: Path, encoding: str, gz: bool) -> Path:
    """Write a UTF-8 copy of a text file, streaming (never the whole file in memory).

    Lines that do not decode in the detected encoding fall back to Windows-1252, which accepts any
    byte, so files concatenated from exports of different tools still import."""
    fd, tmp = tempfile.mkstemp(suffix=".csv", prefix="touchpoint-")
    opener = gzip.open if gz else open
    try:
        with opener(path, "rb") as src, os.fdopen(fd, "w", encoding="utf-8", newline="") as dst:
            if encoding.startswith("utf-16"):
                reader = codecs.getreader(encoding)(src, errors="strict")
                try:
                    for chunk in iter(lambda: reader.read(1 << 20), ""):
                        dst.write(chunk.lstrip("\ufeff") if dst.tell() == 0 else chunk)
                except UnicodeDecodeError as exc:
                    raise UnreadableFile(
                        f"{path.name} is not valid {encoding.upper()} text ({exc.reason} at byte {exc.start}).",
                        fix="Save the file again as UTF-8 CSV.",
                    ) from exc
            else:
                for line in src:
                    try:
                        dst.write(line.decode(encoding))
                    except UnicodeDecodeError:
                        dst.write(line.decode("cp1252", errors="replace"))
    except (OSError, EOFError) as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UnreadableFile(f"{path.name} could not be read to the end ({exc}).", fix="Export the file again.") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _sample_lines(text: str, n: int = 50) -> list[str]:
    """The first non-blank lines of a sample, without a last line the sample may have cut short."""
    lines = text.splitlines()
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]
    return [ln for ln in lines[:n] if ln.strip()]


def _whitespace_width(lines: list[str]) -> int:
    """The number of space-separated values most data lines have (0 when there is no such number)."""
    counts = [len(ln.split()) for ln in (lines[1:] or lines)]
    if not counts:
        return 0
    width = max(set(counts), key=lambda c: (counts.count(c), c))
    # A few short or long lines are rows to reject, not a reason to doubt the layout.
    return width if width > 1 and counts.count(width) * 3 >= len(counts) * 2 else 0


def _sniff_delimiter(text: str) -> tuple[str | None, bool]:
    """(delimiter, whitespace_separated) guessed from the first lines, or (None, False) to let DuckDB sniff."""
    lines = _sample_lines(text)
    if len(lines) < 1:
        return None, False
    for d in (",", ";", "\t", "|"):
        # A delimiter is on (nearly) every line; a comma inside one value of a space-separated file is not.
        if sum(d in ln for ln in lines) * 10 >= len(lines) * 9:
            return None, False
        # Nor is it in the header, whose names it separates (quoted text running over several lines
        # leaves it off many lines).
        if d in lines[0] and len(lines[0].split()) == 1:
            return None, False
    return None, _whitespace_width(lines) > 1


def _looks_like_header(tokens: list[str], next_tokens: list[str]) -> bool:
    def numeric(t: str) -> bool:
        return bool(re.fullmatch(r"[-+]?[\d.,]+", t))

    return not any(numeric(t) for t in tokens) and any(numeric(t) for t in next_tokens)


def _positional_select(n: int, source: str) -> str:
    cols = ", ".join(f"CAST(#{i + 1} AS VARCHAR) AS c{i}" for i in range(n))
    return f"SELECT {cols} FROM {source}"


def read_into(cur: duckdb.DuckDBPyConnection, path: str | Path, *, sheet: str | int | None = None,
              limit: int | None = None, table: str = "raw") -> RawFile:
    """Load a file as text into the temporary table ``table(c0, c1, …)`` on ``cur``; raise a domain
    error naming the problem and the fix when the file cannot be read."""
    path = Path(path)
    if not path.exists():
        raise UnreadableFile(f"{path} does not exist.", fix="Check the path and try again.")
    if path.stat().st_size == 0:
        raise UnreadableFile(f"{path.name} is empty (0 bytes).", fix="Export the data again; the file has no content.")
    head, gz = _head(path)
    if not head.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
        raise UnreadableFile(f"{path.name} contains no data.", fix="Export the data again; the file is blank.")
    fmt = _detect_format(path, head, gz)
    limit_sql = f" LIMIT {int(limit)}" if limit else ""
    cur.execute(f"DROP TABLE IF EXISTS {table}")
    if gz and not limit:  # a sample for inspection needs only the start; the import checks the whole file
        _check_gzip(path)
    try:
        if fmt == "excel":
            raw = _read_excel(cur, path, sheet, limit_sql, table)
        elif fmt == "parquet":
            raw = _read_structured(cur, path, "read_parquet(?)", "parquet", limit_sql, table)
        elif fmt == "json":
            raw = _read_json(cur, path, head, gz, limit_sql, table)
        else:
            raw = _read_text(cur, path, head, gz, limit_sql, table)
    except TouchpointError:
        raise
    except duckdb.Error as exc:
        raise UnreadableFile(
            f"{path.name} could not be read: {_first_line(exc)}",
            fix="Check that the file is a complete, uncorrupted export; re-export it if it was cut short.",
        ) from exc
    if raw.rows == 0 and not raw.parse_rejects:
        raw.cleanup()
        if raw.file_format in ("json", "parquet"):
            raise UnreadableFile(f"{path.name} holds no records.", fix="Export the data again including its rows.")
        raise UnreadableFile(f"{path.name} has a header but no data rows.",
                             fix="Export the data again including its rows below the header.")
    return raw


def _check_gzip(path: Path) -> None:
    """Decompress the whole file once, so a cut-short download fails here instead of importing the
    rows that happen to precede the cut (DuckDB's reader stops quietly at a truncated stream)."""
    try:
        with gzip.open(path, "rb") as gz:
            while gz.read(1 << 22):
                pass
    except (OSError, EOFError, zlib_error) as exc:
        raise UnreadableFile(
            f"{path.name} is a damaged or incomplete gzip file ({exc}).",
            fix="Download or compress the file again; it was probably cut short.",
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _check_width(path: Path, columns: int) -> None:
    if columns > MAX_COLUMNS:
        raise UnreadableFile(
            f"{path.name} has {columns:,} columns; Touchpoint reads at most {MAX_COLUMNS:,}.",
            fix="Export only the columns you need (the ID, date, scores and the dimensions you analyse) and import that file.",
        )


_NESTED_TYPE = re.compile(r"^(STRUCT|MAP|UNION)\(|\[\d*\]$")


def _read_structured(cur, path: Path, reader: str, fmt: str, limit_sql: str, table: str) -> RawFile:
    described = cur.execute(f"DESCRIBE SELECT * FROM {reader}", [str(path)]).fetchall()
    names = [r[0] for r in described]
    if not names:
        raise UnreadableFile(f"{path.name} has no columns.", fix="Export the data again with its columns.")
    _check_width(path, len(names))
    cur.execute(f"CREATE TEMP TABLE {table} AS {_positional_select(len(names), reader)}{limit_sql}", [str(path)])
    rows = cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    nested = {r[0]: r[1] for r in described if _NESTED_TYPE.search(r[1])}
    return RawFile(path, fmt, names, rows, nested=nested)


def _read_json(cur, path: Path, head: bytes, gz: bool, limit_sql: str, table: str) -> RawFile:
    encoding = _detect_encoding(head)
    source, temp = path, []
    if encoding != "utf-8":  # DuckDB reads UTF-8 only; PowerShell and Notepad write UTF-16 JSON
        source = _transcode(path, encoding, gz)
        temp.append(source)
    try:
        text = head.decode(encoding, errors="ignore").lstrip("\ufeff \t\r\n")
        if text.startswith("[") and not limit_sql and not _tail(source).rstrip().endswith("]"):
            # DuckDB reads the records before the cut of an array that never closes, silently.
            raise UnreadableFile(f"{path.name} is not valid JSON: the array does not end with ']' (the file was cut short).",
                                 fix="Export or download the file again.")
        raw = _read_json_records(cur, path, source, text, limit_sql, table)
    except BaseException:
        for p in temp:
            p.unlink(missing_ok=True)
        raise
    raw.encoding = encoding
    raw.temp_paths = temp
    return raw


def _tail(path: Path, size: int = 256) -> str:
    """The last characters of a UTF-8 file (gzip decompressed)."""
    if path.name.lower().endswith(".gz"):
        last = b""
        with gzip.open(path, "rb") as gz:
            for chunk in iter(lambda: gz.read(1 << 22), b""):
                last = (last + chunk)[-size:]
    else:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - size))
            last = fh.read()
    return last.decode("utf-8", errors="ignore")


def _read_json_records(cur, path: Path, source: Path, text: str, limit_sql: str, table: str) -> RawFile:
    fix = "Export the records as a JSON array ([{…}, {…}]) or as NDJSON (one object per line)."
    if text[:1] not in ("[", "{"):
        raise UnreadableFile(f"{path.name} is not JSON records.", fix=fix)
    ndjson = text.startswith("{")
    # maximum_depth=1 keeps every value as its JSON text: the import, not the JSON reader, decides how
    # text becomes dates and numbers (the reader would turn "2024-03-10T23:30+02:00" into UTC early and
    # a date like 03/04/2024 into whatever it guesses).
    # maximum_object_size bounds one record (or one object that wraps them all, which is then named as
    # such) at 64 MiB. The reader reserves buffers of twice that against DuckDB's memory limit whatever
    # the file's size: with 256 MiB even a two-line file failed under the store's 1 GB limit
    # (cx.store.DEFAULT_DUCKDB_MEMORY), though little of it becomes resident.
    reader = (f"read_json(?, format='{'newline_delimited' if ndjson else 'array'}', maximum_depth=1, "
              "maximum_object_size=67108864)")
    try:
        described = cur.execute(f"DESCRIBE SELECT * FROM {reader}", [str(source)]).fetchall()
    except duckdb.Error as exc:
        raise UnreadableFile(f"{path.name} is not valid {'NDJSON' if ndjson else 'JSON'} ({_first_line(exc)}).",
                             fix=fix) from exc
    names = [r[0] for r in described]
    types = [r[1] for r in described]
    if not names:
        raise UnreadableFile(f"{path.name} holds no records.", fix=fix)
    _check_width(path, len(names))
    cols = ", ".join(
        (f"#{i + 1} ->> '$'" if t == "JSON" else f"CAST(#{i + 1} AS VARCHAR)") + f" AS c{i}" for i, t in enumerate(types)
    )
    cur.execute(f"CREATE TEMP TABLE {table} AS SELECT {cols} FROM {reader}{limit_sql}", [str(source)])
    rows = cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    if rows == 0:
        raise UnreadableFile(f"{path.name} holds no records.", fix="Export the data again including its rows.")
    if names == ["json"]:
        # DuckDB names the one column "json" when the values are not objects: [1, 2], [[…]], "text".
        raise UnreadableFile(f"{path.name} is JSON but not a list of records (objects with named fields).", fix=fix)
    if ndjson and rows == 1 and len(names) <= 3 and _single_array_wrapper(cur, table):
        raise UnreadableFile(f"{path.name} is a JSON object that wraps the records, not a list of records.",
                             fix="Export the records themselves as a JSON array or NDJSON, "
                                 "or save the inner list (e.g. the value of \"data\") as its own file.")
    return RawFile(path, "json", names, rows)


def _single_array_wrapper(cur, table: str) -> bool:
    first = cur.execute(f"SELECT * FROM {table} LIMIT 1").fetchone() or ()
    return any(isinstance(v, str) and v.lstrip().startswith("[") for v in first)


def _read_text(cur, path: Path, head: bytes, gz: bool, limit_sql: str, table: str) -> RawFile:
    encoding = _detect_encoding(head)
    source = path
    temp: list[Path] = []
    if encoding != "utf-8":
        source = _transcode(path, encoding, gz)
        temp.append(source)
        gz_read = False
    else:
        gz_read = gz
    try:
        text = head.decode(encoding if not encoding.startswith("utf-16") else encoding, errors="replace").lstrip("\ufeff")
        first = text.split("\n", 1)[0]
        # Counted before DuckDB sniffs the file, which takes seconds on a header of thousands of names.
        _check_width(path, max(first.count(d) for d in (",", ";", "\t", "|")) + 1)
        _, whitespace = _sniff_delimiter(text)
        compression = "gzip" if gz_read else "none"
        if whitespace:
            raw = _read_whitespace(cur, source, compression, text, limit_sql, table)
        else:
            try:
                raw = _read_csv(cur, source, compression, limit_sql, table)
                bad_text = encoding == "utf-8" and any("unicode" in r[3].lower() for r in raw.parse_rejects)
            except duckdb.Error as exc:
                if not (encoding == "utf-8" and "unicode" in str(exc).lower()):
                    raise
                bad_text = True
            if bad_text:
                # The start of the file was UTF-8 but a later line is not: transcode line by line
                # (such lines fall back to Windows-1252) rather than reject them.
                source = _transcode(path, "utf-8", gz)
                temp.append(source)
                cur.execute(f"DROP TABLE IF EXISTS {table}")
                raw = _read_csv(cur, source, "none", limit_sql, table)
        raw.path = path
        raw.encoding = encoding
        raw.temp_paths = temp
        return raw
    except BaseException:
        for p in temp:
            p.unlink(missing_ok=True)
        raise


def _read_csv(cur, source: Path, compression: str, limit_sql: str, table: str) -> RawFile:
    opts = ("all_varchar=true, ignore_errors=true, store_rejects=true, null_padding=false, "
            f"compression='{compression}', max_line_size=16777216, sample_size=20480")
    sniff = cur.execute(f"SELECT Delimiter, HasHeader, Quote FROM sniff_csv(?, {opts.replace('store_rejects=true, ', '')})",
                        [str(source)]).fetchone()
    if sniff[2] == "'":
        # Apostrophes in free text ("don't") are far more common than values quoted with them, and read
        # as quotes they merge lines into one value (rows silently lost) or hide the delimiter: quote
        # with double quotes, as RFC 4180 and every export tool do.
        opts += ", quote='\"'"
        sniff = cur.execute(f"SELECT Delimiter, HasHeader, Quote FROM sniff_csv(?, {opts.replace('store_rejects=true, ', '')})",
                            [str(source)]).fetchone()
    delimiter, has_header = sniff[0], bool(sniff[1])
    first = _first_text_line(source, compression)
    present = {d: first.count(d) for d in (",", ";", "\t", "|") if d in first}
    if present and delimiter not in present:
        # On a short file, a delimiter-like character inside quoted text can win the sniffer's vote,
        # and the file would read as one column; the header line shows the real delimiter.
        delimiter = max(present, key=present.get)
        has_header = bool(cur.execute(
            f"SELECT HasHeader FROM sniff_csv(?, {opts.replace('store_rejects=true, ', '')}, delim=?)",
            [str(source), delimiter]).fetchone()[0])
    reader = f"read_csv(?, {opts}, delim=?, header=?)"
    args = [str(source), delimiter, has_header]
    names = [r[0] for r in cur.execute(f"DESCRIBE SELECT * FROM {reader}", args).fetchall()]
    _check_width(source, len(names))
    if has_header:
        # DuckDB renames a repeated header ("nps", "nps_1") and a blank one ("column1"): keep the names
        # the file has, so a repeated name is caught as ambiguous rather than silently read as two.
        header = cur.execute(
            f"SELECT * FROM read_csv(?, {opts.replace('store_rejects=true, ', '')}, delim=?, header=false) LIMIT 1",
            args[:2]).fetchone()
        if header is not None and len(header) == len(names):
            actual = [h if h is not None else "" for h in header]
            if len(set(actual)) < len(actual) or "" in actual:
                names = [a.strip() for a in actual]
    # DuckDB appends every scan's rejects to the same temporary tables: start from empty ones.
    cur.execute("DROP TABLE IF EXISTS reject_errors")
    cur.execute("DROP TABLE IF EXISTS reject_scans")
    cur.execute(f"CREATE TEMP TABLE {table} AS {_positional_select(len(names), reader)}{limit_sql}", args)
    rows = cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    rejects: list[tuple[int, str | None, str, str]] = []
    if not limit_sql:
        for line, col, csv_line, message in cur.execute(
            "SELECT line, any_value(column_name), any_value(csv_line), any_value(error_message) "
            "FROM reject_errors GROUP BY line ORDER BY line"
        ).fetchall():
            rejects.append((int(line) - (1 if has_header else 0), col, (csv_line or "")[:500], _csv_reason(message)))
    if not has_header:
        names = [f"column{i + 1}" for i in range(len(names))]
    return RawFile(source, "csv", names, rows, delimiter={"\t": "tab"}.get(delimiter, delimiter),
                   has_header=has_header, parse_rejects=rejects)


def _first_text_line(source: Path, compression: str) -> str:
    opener = gzip.open if compression == "gzip" else open
    with opener(source, "rb") as fh:
        start = fh.read(1 << 16)
    return start.decode("utf-8", errors="ignore").lstrip("\ufeff").splitlines()[0] if start.strip() else ""


def _csv_reason(message: str) -> str:
    """DuckDB's reason for a malformed line, in the words of the rest of the import."""
    m = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", message)
    if m:
        expected, found = int(m.group(1)), int(m.group(2))
        return f"{found} values where the header has {expected}" + (" (a value is missing)" if found < expected
                                                                    else " (a delimiter inside an unquoted value?)")
    return _first_line(message)


def _read_whitespace(cur, source: Path, compression: str, text: str, limit_sql: str, table: str) -> RawFile:
    """Columns separated by runs of spaces (fixed-width-ish exports such as CDNOW's)."""
    sample = _sample_lines(text)
    width = _whitespace_width(sample)
    lines = [ln.split() for ln in sample]
    first_full = next((ln for ln in lines[1:] if len(ln) == width), lines[0])
    has_header = len(lines) > 1 and _looks_like_header(lines[0], first_full)
    reader = (f"read_csv(?, columns={{'line': 'VARCHAR'}}, delim=chr(30), quote='', escape='', header=false, "
              f"compression='{compression}', max_line_size=16777216)")
    parts = "regexp_split_to_array(trim(line), '\\s+')"
    cols = ", ".join(f"p[{i + 1}] AS c{i}" for i in range(width))
    cur.execute(
        f"CREATE TEMP TABLE {table} AS SELECT {cols} FROM (SELECT {parts} AS p, len({parts}) AS n, "
        f"row_number() OVER () AS ln FROM {reader} WHERE trim(line) <> '') "
        f"WHERE n = {width} AND ln > {1 if has_header else 0} ORDER BY ln{limit_sql}",
        [str(source)],
    )
    rows = cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    rejects = []
    if not limit_sql:
        for ln, line in cur.execute(
            f"SELECT ln, line FROM (SELECT line, len({parts}) AS n, row_number() OVER () AS ln FROM {reader} "
            f"WHERE trim(line) <> '') WHERE n <> {width} AND ln > {1 if has_header else 0} ORDER BY ln",
            [str(source)],
        ).fetchall():
            rejects.append((int(ln) - (1 if has_header else 0), None, line[:500],
                            f"expected {width} values separated by spaces"))
    names = lines[0] if has_header and len(lines[0]) == width else [f"column{i + 1}" for i in range(width)]
    return RawFile(source, "text", list(names), rows, delimiter="whitespace", has_header=has_header,
                   parse_rejects=rejects)


def _excel_sheet(reader, sheet: str | int | None) -> str:
    names = list(reader.sheet_names)
    if sheet is None or sheet == "":
        return names[0]
    if isinstance(sheet, int) or (isinstance(sheet, str) and sheet.isdigit() and sheet not in names):
        idx = int(sheet) - 1
        if 0 <= idx < len(names):
            return names[idx]
    elif sheet in names:
        return sheet
    raise MappingError(f"The workbook has no sheet {sheet!r}.", fix=f"Choose one of: {', '.join(names)}.")


def _read_excel(cur, path: Path, sheet: str | int | None, limit_sql: str, table: str) -> RawFile:
    import fastexcel

    try:
        reader = fastexcel.read_excel(str(path))
    except Exception as exc:  # noqa: BLE001 - the reader raises its own error types
        raise UnreadableFile(
            f"{path.name} could not be opened as a workbook ({_first_line(exc)}).",
            fix="If it is password-protected, remove the password in Excel; otherwise save it again as .xlsx.",
        ) from exc
    name = _excel_sheet(reader, sheet)
    # The header is not always on row 1: find the first row that looks like column names.
    probe = reader.load_sheet(name, header_row=None, n_rows=30, dtypes="string").to_pandas()
    if probe.empty:
        raise UnreadableFile(f"Sheet {name!r} of {path.name} is empty.", fix="Choose the sheet that holds the data.")
    header_row = _excel_header_row(probe)
    data = reader.load_sheet(name, header_row=header_row, dtypes="string")
    arrow = data.to_arrow()
    names = [str(c) for c in arrow.column_names]
    _check_width(path, len(names))
    cur.register("excel_source", arrow)
    try:
        cur.execute(f"CREATE TEMP TABLE {table} AS {_positional_select(len(names), 'excel_source')}{limit_sql}")
    finally:
        cur.unregister("excel_source")
    # Rows that are wholly empty (formatting below the data) are not records.
    where = " AND ".join(f"(c{i} IS NULL OR {_trimmed(i)} = '')" for i in range(len(names)))
    cur.execute(f"DELETE FROM {table} WHERE {where}")
    rows = cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    raw = RawFile(path, "excel", names, rows, sheet=name, sheets=list(reader.sheet_names), header_row=header_row + 1)
    blank = _uncalculated_formulas(path, name)
    if blank:
        raw.notes.append(f"{blank} formula cell{'s' if blank > 1 else ''} of sheet {name!r} had no calculated value "
                         "(the file was written by a program that does not calculate) and read as empty: open the "
                         "file in Excel, save it, and import it again to get their values.")
    return raw


_FORMULA_WITHOUT_VALUE = re.compile(rb"<f\b[^>]*(?:/>|>[^<]*</f>)\s*(?:<v\s*/>|<v>\s*</v>)?\s*</c>")


def _uncalculated_formulas(path: Path, sheet: str) -> int:
    """How many formula cells of an .xlsx sheet carry no cached result. Only the result is ever read,
    never the formula text; a formula without one reads as an empty cell."""
    import html

    try:
        with zipfile.ZipFile(path) as zf:
            book = zf.read("xl/workbook.xml").decode("utf-8", "replace")
            rels = zf.read("xl/_rels/workbook.xml.rels").decode("utf-8", "replace")
            rid = None
            for tag in re.findall(r"<(?:\w+:)?sheet\b[^>]*>", book):
                name = re.search(r'\bname="([^"]*)"', tag)
                if name and html.unescape(name.group(1)) == sheet:
                    rid = (re.search(r'\br:id="([^"]*)"', tag) or re.search(r'\bid="([^"]*)"', tag)).group(1)
            target = None
            for tag in re.findall(r"<Relationship\b[^>]*>", rels):
                if re.search(rf'\bId="{re.escape(rid or "")}"', tag):
                    target = re.search(r'\bTarget="([^"]*)"', tag).group(1)
            if not target:
                return 0
            member = target.lstrip("/") if target.startswith("/") else "xl/" + target
            count, pending = 0, b""
            with zf.open(member) as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    buf, end = pending + chunk, 0
                    for m in _FORMULA_WITHOUT_VALUE.finditer(buf):
                        count, end = count + 1, m.end()
                    pending = buf[max(end, len(buf) - 4096):]
            return count
    except (KeyError, zipfile.BadZipFile, AttributeError, OSError):
        return 0  # .xls, .ods or an unusual layout: nothing to report


def _excel_header_row(probe: pd.DataFrame) -> int:
    """Index of the first row whose cells are mostly non-empty text and that data rows follow."""
    width = probe.shape[1]
    for i in range(min(len(probe), 20)):
        row = probe.iloc[i]
        filled = [v for v in row if isinstance(v, str) and v.strip()]
        textual = [v for v in filled if not re.fullmatch(r"[-+]?[\d.,]+", v.strip())]
        if len(filled) >= max(1, int(0.6 * width)) and len(textual) == len(filled) and i + 1 < len(probe):
            return i
        if len(filled) >= max(1, int(0.6 * width)) and len(textual) == len(filled):
            return i
    return 0


# ------------------------------------------------------------------------------------------------
# Mapping proposal: header synonyms + value profiles
# ------------------------------------------------------------------------------------------------
@dataclass
class Profile:
    """What a sample says about one source column (shares are of non-empty values)."""

    column: str
    filled: float
    distinct: float
    numeric: float
    integer: float
    min: float | None
    max: float | None
    timestamp: float
    flag: float
    avg_length: float
    examples: list[str]
    ten_point: float = 0.0  # share of whole numbers from 0 to 10 (the values an NPS column holds)


def profile_columns(cur, raw: RawFile, table: str = "raw", nulls: tuple[str, ...] = DEFAULT_NULLS) -> list[Profile]:
    """Profile each column of the sampled raw table in one DuckDB query."""
    profiles: list[Profile] = []
    exprs = []
    for i in range(len(raw.columns)):
        # Each column's cleaned text and number are computed once, in the subquery below: spelling the
        # cleaning out in every aggregate made a wide file's profile take seconds per 50 columns.
        v, num = f"v{i}", f"n{i}"
        exprs.append(
            f"count({v}), approx_count_distinct({v}), count({num}), count(CASE WHEN {num} = round({num}) THEN 1 END), "
            f"min({num}), max({num}), "
            f"count(CASE WHEN regexp_matches({v}, '^\\d{{4}}-\\d{{1,2}}-\\d{{1,2}}([ T].*)?$|^\\d{{1,2}}[/.-]\\d{{1,2}}[/.-]\\d{{2,4}}([ T].*)?$|^(19|20)\\d{{6}}$') THEN 1 END), "
            f"count(CASE WHEN lower({v}) IN ('yes','no','true','false','y','n','t','f') THEN 1 END), "
            f"avg(length({v})), list({v}) FILTER (WHERE {v} IS NOT NULL)[1:3], "
            f"count(CASE WHEN {num} = round({num}) AND {num} BETWEEN 0 AND 10 THEN 1 END)"
        )
    total = cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0] or 1
    # One statement per 50 columns keeps very wide files within DuckDB's expression limits.
    for start in range(0, len(exprs), 50):
        chunk = exprs[start:start + 50]
        inner = ", ".join(f"{_clean(i)} AS v{i}, TRY_CAST(replace({_clean(i)}, ',', '.') AS DOUBLE) AS n{i}"
                          for i in range(start, start + len(chunk)))
        row = cur.execute(f"SELECT {', '.join(chunk)} FROM (SELECT {inner} FROM {table})",
                          {"nulls": list(nulls)}).fetchone()
        for j in range(len(chunk)):
            filled, distinct, numeric, integer, mn, mx, ts, flag, avg_len, examples, ten = row[j * 11:(j + 1) * 11]
            f = filled or 0
            profiles.append(Profile(
                column=raw.columns[start + j], filled=f / total, distinct=(distinct or 0) / max(f, 1),
                numeric=(numeric or 0) / max(f, 1), integer=(integer or 0) / max(f, 1),
                min=mn, max=mx, timestamp=(ts or 0) / max(f, 1), flag=(flag or 0) / max(f, 1),
                avg_length=float(avg_len or 0), examples=[str(e) for e in (examples or [])],
                ten_point=(ten or 0) / max(f, 1),
            ))
    return profiles


def _name_score(header: str, synonyms: tuple[str, ...]) -> float:
    h = normalise_header(header)
    if not h:
        return 0.0
    best = 0.0
    for rank, syn in enumerate(synonyms):
        bonus = 0.05 * max(0, 3 - rank) / 3  # earlier synonyms are the field's own names
        if h == syn or h.replace(" ", "") == syn.replace(" ", ""):
            best = max(best, 0.95 + bonus)
        elif re.search(rf"(^| ){re.escape(syn)}($| )", h) and len(syn) >= 3:
            best = max(best, 0.6 + 0.3 * len(syn) / len(h) + bonus)
    return min(best, 1.0)


def _value_fit(kind: str, name: str, p: Profile) -> float:
    """How well the values of a column fit a field (0 = impossible, 1 = typical)."""
    if p.filled == 0:
        return 0.3
    if kind == "timestamp":
        return p.timestamp
    if kind == "score":
        if p.numeric < 0.5:
            return 0.0
        # Scores typed as words ("ten") in a small file are rows to reject, not a reason to send the file
        # to another kind: judge the numbers among the values, and trust the column a little less.
        trust = 1.0 if p.numeric >= 0.9 else 0.6
        ten_point, integer = p.ten_point / p.numeric, p.integer / p.numeric
        # A few out-of-range scores (an 11, a -1) are typos to reject row by row, not a reason to doubt
        # the column: judge by the share of values in range, not by the extremes.
        if name == "nps":
            return trust * (1.0 if ten_point >= 0.95 else 0.7 if ten_point >= 0.5 and integer >= 0.9 else 0.0)
        in_range = ten_point >= 0.95 or ((p.min or 0) >= 0 and (p.max or 0) <= 10)
        return trust * (1.0 if in_range else 0.5 if (p.min or 0) >= 0 and (p.max or 0) <= 100 else 0.0)
    if kind in ("number", "integer"):
        if p.numeric < 0.9:
            return 0.0
        return 1.0 if kind == "number" or p.integer > 0.99 else 0.2
    if kind == "flag":
        return 1.0 if p.flag > 0.95 or (p.integer > 0.99 and (p.min or 0) >= 0 and (p.max or 0) <= 1) else 0.0
    if kind == "id":
        return 1.0 if p.timestamp < 0.5 else 0.2
    if kind == "text":
        return 1.0 if p.avg_length > 12 or p.numeric < 0.5 else 0.2
    if kind == "dimension":
        return 1.0 if p.avg_length < 60 and p.timestamp < 0.5 else 0.3
    return 0.5


@dataclass
class Proposal:
    kind: str
    confidence: float
    column_map: dict[str, str]  # source column -> field | "dim:<name>" | "ignore"
    field_confidence: dict[str, float]


def propose_mapping(columns: list[str], profiles: list[Profile], kind: str | None = None,
                    has_header: bool = True) -> Proposal:
    """Propose the kind and a column → field mapping, each with a confidence in [0, 1]."""
    candidates = [kind] if kind else list(KINDS)
    best: Proposal | None = None
    for k in candidates:
        prop = _propose_for_kind(k, columns, profiles, has_header)
        if best is None or prop.confidence > best.confidence:
            best = prop
    assert best is not None
    return best


def _propose_for_kind(kind: str, columns: list[str], profiles: list[Profile], has_header: bool) -> Proposal:
    table = TABLES[kind]
    by_col = {p.column: p for p in profiles}
    scores: list[tuple[float, str, str]] = []
    for f in table.fields:
        syns = SYNONYMS[kind].get(f.name, ())
        for col in columns:
            name = _name_score(col, syns) if has_header else 0.0
            fit = _value_fit(f.kind, f.name, by_col[col])
            if has_header:
                score = name * (0.35 + 0.65 * fit) if name else 0.0
            else:
                score = 0.5 * fit if fit >= 0.9 else 0.0
            if score > 0.3:
                scores.append((score, f.name, col))
    if not has_header:
        scores = _headerless_scores(kind, columns, by_col)
    scores.sort(key=lambda s: (-s[0], columns.index(s[2])))
    column_map: dict[str, str] = {}
    field_conf: dict[str, float] = {}
    for score, fname, col in scores:
        if fname in field_conf or col in column_map:
            continue
        column_map[col] = fname
        field_conf[fname] = round(score, 2)
    for col in columns:
        column_map.setdefault(col, "ignore")
    required = [f.name for f in table.fields if f.required]
    if kind == "responses":
        metric_conf = max(field_conf.get("nps", 0), field_conf.get("csat", 0), field_conf.get("ces", 0))
        parts = [field_conf.get("submitted_at", 0), metric_conf]
    else:
        parts = [field_conf.get(r, 0) for r in required] or [field_conf.get(table.key[0], 0)]
    if kind != "events" and len(table.key) == 1 and table.key[0] in field_conf and not required:
        parts.append(field_conf[table.key[0]])
    coverage = sum(field_conf.values()) / max(len(table.fields), 1)
    # How much of the file this kind explains: a file of response_id, submitted_at and nps is responses
    # even when its scores look doubtful, not tickets whose created_at alone matches one column. Wide
    # exports are judged against the fields the table has, so their extra columns cost nothing.
    explained = sum(field_conf.values()) / max(min(len(columns), len(table.fields)), 1)
    confidence = (min(parts) if parts else 0.0) * 0.6 + min(coverage, 1.0) * 0.1 + min(explained, 1.0) * 0.3
    return Proposal(kind, round(confidence, 2), {c: column_map[c] for c in columns}, field_conf)


def _headerless_scores(kind: str, columns: list[str], by_col: dict[str, Profile]) -> list[tuple[float, str, str]]:
    """Without a header only the values speak: an orders-like shape is id, date, count, amount."""
    if kind != "orders":
        return []
    scores = []
    for col in columns:
        p = by_col[col]
        if p.timestamp > 0.95:
            scores.append((0.6, "ordered_at", col))
        elif p.integer > 0.99 and p.distinct < 0.9 and (p.max or 0) > 100:
            scores.append((0.5, "customer_id", col))
        elif p.integer > 0.99 and (p.max or 0) <= 100:
            scores.append((0.45, "quantity", col))
        elif p.numeric > 0.99 and p.integer < 0.99:
            scores.append((0.55, "amount", col))
    return scores


# ------------------------------------------------------------------------------------------------
# Inspection (what the Data page shows before an import)
# ------------------------------------------------------------------------------------------------
@dataclass
class Inspection:
    """How a file would be read and mapped: everything the analyst confirms before importing."""

    file_name: str
    file_format: str
    encoding: str
    delimiter: str | None
    has_header: bool
    sheets: list[str]
    sheet: str | None
    header_row: int | None
    columns: list[str]
    sample_rows: int
    preview: pd.DataFrame
    kind: str
    confidence: float
    column_map: dict[str, str]
    field_confidence: dict[str, float]
    options: Options
    questions: list[str]
    notes: list[str]
    signature: str
    saved: bool
    kind_scores: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("preview", "options")}
        d["options"] = self.options.as_dict()
        d["preview"] = self.preview.head(5).to_dict(orient="records")
        return d


def inspect_file(store: Store, path: str | Path, *, kind: str | None = None, sheet: str | int | None = None,
                 options: Options | None = None, file_name: str | None = None) -> Inspection:
    """Read a sample of the file and propose kind, mapping and value conventions (nothing is stored)."""
    path = Path(path)
    with store.cursor() as cur:
        raw = read_into(cur, path, sheet=sheet, limit=SAMPLE_ROWS, table="sample")
        try:
            if raw.rows == 0:
                raise UnreadableFile(f"{path.name} has no data rows that could be read.",
                                     fix="Check the delimiter and that the file has rows below its header.")
            profiles = profile_columns(cur, raw, "sample")
            signature = header_signature(raw.columns, raw.has_header)
            saved = _saved_mapping(cur, signature)
            kind_scores = {k: _propose_for_kind(k, raw.columns, profiles, raw.has_header).confidence for k in KINDS}
            if saved and (kind is None or kind == saved["kind"]):
                column_map = {c: saved["mapping"].get(c, "ignore") for c in raw.columns}
                prop = Proposal(saved["kind"], 1.0, column_map, {f: 1.0 for f in column_map.values()})
                opts, fallback = _saved_options(saved)
                if options is not None:
                    opts = _overlay(opts, options)
            else:
                prop = propose_mapping(raw.columns, profiles, kind, raw.has_header)
                saved = fallback = None
                opts = options or Options()
            opts, questions, notes = _detect_conventions(cur, raw, "sample", prop.kind,
                                                         _field_sources(prop.column_map, raw.columns), opts, fallback)
            notes = [*raw.notes, *notes]
            preview = cur.execute(f"SELECT * FROM sample LIMIT 50").df()
            preview.columns = _unique_names(raw.columns)
        finally:
            raw.cleanup()
    return Inspection(
        file_name=file_name or path.name, file_format=raw.file_format, encoding=raw.encoding, delimiter=raw.delimiter,
        has_header=raw.has_header, sheets=raw.sheets, sheet=raw.sheet, header_row=raw.header_row,
        columns=raw.columns, sample_rows=raw.rows, preview=preview, kind=prop.kind, confidence=prop.confidence,
        column_map=prop.column_map, field_confidence=prop.field_confidence, options=opts, questions=questions,
        notes=notes, signature=signature, saved=saved is not None, kind_scores=kind_scores,
    )


def _unique_names(columns: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for c in columns:
        name = c if c.strip() else "(blank)"
        if name in seen:
            seen[name] += 1
            name = f"{name} ({seen[name]})"
        else:
            seen[name] = 1
        out.append(name)
    return out


def _saved_options(saved: dict[str, Any]) -> tuple[Options, Options]:
    """(options to start from, fallback) for a saved mapping: the date order and decimal separator are
    detected again from the new file and the saved ones only settle what its data leaves open."""
    stored = Options.from_dict(saved["options"])
    return stored.replace(date_order=None, decimal=None), stored


def _saved_mapping(cur, signature: str) -> dict[str, Any] | None:
    row = cur.execute("SELECT kind, mapping, options FROM mappings WHERE signature = ?", [signature]).fetchone()
    if row is None:
        return None
    return {"kind": row[0], "mapping": json.loads(row[1]), "options": json.loads(row[2])}


def _field_sources(column_map: dict[str, str], columns: list[str]) -> dict[str, int]:
    """field -> source column index, from a column -> target map."""
    out: dict[str, int] = {}
    for col, target in column_map.items():
        if target and target != "ignore" and not target.startswith("dim:"):
            out[target] = columns.index(col)
    return out


_DMY = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{2,4})")


def _preferred_scales(cur) -> dict[str, tuple[int, int]]:
    """The CSAT and CES scales the analyst set in Settings (tried first when values fit several)."""
    row = cur.execute("SELECT value FROM settings WHERE key = 'analysis'").fetchone()
    saved = json.loads(row[0]) if row else {}
    return {score: tuple(saved.get(f"{score}_scale") or DEFAULT_SCALES[score]) for score in ("csat", "ces")}


def _detect_conventions(cur, raw: RawFile, table: str, kind: str, sources: dict[str, int],
                        opts: Options, fallback: Options | None = None) -> tuple[Options, list[str], list[str]]:
    """Fill the options that were left to detection; list what must be asked and what was assumed.

    ``fallback`` holds the conventions saved with this export's mapping: they settle what this file's
    data leaves open (dates that are all ambiguous, numbers without separators), but what the data
    shows wins (a day above 12 in second position means month-first, whatever was saved)."""
    questions: list[str] = []
    notes: list[str] = []
    spec = TABLES[kind]
    ts_cols = [i for f, i in sources.items() if f in spec.field_names and spec.field(f).kind == "timestamp"]
    if opts.date_order is None and ts_cols:
        first_big = second_big = slashed = 0
        for i in ts_cols:
            row = cur.execute(
                f"SELECT count(*), max(TRY_CAST(regexp_extract(c{i}, '^\\s*(\\d{{1,2}})[/.-](\\d{{1,2}})[/.-]\\d{{2,4}}', 1) AS INT)), "
                f"max(TRY_CAST(regexp_extract(c{i}, '^\\s*(\\d{{1,2}})[/.-](\\d{{1,2}})[/.-]\\d{{2,4}}', 2) AS INT)) "
                f"FROM {table} WHERE regexp_matches(c{i}, '^\\s*\\d{{1,2}}[/.-]\\d{{1,2}}[/.-]\\d{{2,4}}')"
            ).fetchone()
            slashed += row[0] or 0
            first_big += int((row[1] or 0) > 12)
            second_big += int((row[2] or 0) > 12)
        if slashed:
            if first_big and not second_big:
                opts = opts.replace(date_order="dmy")
                notes.append("Dates are day-first (a day above 12 appears in the first position).")
            elif second_big and not first_big:
                opts = opts.replace(date_order="mdy")
                notes.append("Dates are month-first (a day above 12 appears in the second position).")
            elif first_big and second_big:
                questions.append("Dates mix day-first and month-first orders; choose the one the export used.")
            elif fallback is not None and fallback.date_order:
                opts = opts.replace(date_order=fallback.date_order)
                notes.append(f"Dates read {_ORDER_NAMES[fallback.date_order]}, as saved with this export's mapping.")
            else:
                questions.append("Dates like 03/04/2024 could be 3 April or 4 March: choose day-first (dmy) or month-first (mdy).")
        elif fallback is not None and fallback.date_order:
            opts = opts.replace(date_order=fallback.date_order)
    num_fields = [i for f, i in sources.items() if f in spec.field_names and spec.field(f).kind in ("number", "score", "integer")]
    if opts.decimal is None:
        comma = dot = 0
        for i in num_fields:
            row = cur.execute(
                f"SELECT count(CASE WHEN regexp_matches(trim(c{i}), '^-?\\d+(\\.\\d{{3}})*,\\d+$') THEN 1 END), "
                f"count(CASE WHEN regexp_matches(trim(c{i}), '^-?\\d+(,\\d{{3}})*\\.\\d+$') THEN 1 END) FROM {table}"
            ).fetchone()
            comma += row[0] or 0
            dot += row[1] or 0
        if comma == dot and fallback is not None and fallback.decimal:
            opts = opts.replace(decimal=fallback.decimal)
        else:
            opts = opts.replace(decimal="," if comma > dot else ".")
        if opts.decimal == ",":
            notes.append("Numbers use a decimal comma (1.234,56).")
    for score in ("csat", "ces"):
        if score in sources and getattr(opts, f"{score}_scale") is None:
            i = sources[score]
            v = f"TRY_CAST(replace(trim(c{i}), ',', '.') AS DOUBLE)"
            preferred = _preferred_scales(cur)[score]
            candidates = list(dict.fromkeys([preferred, *STANDARD_SCALES]))
            inside = ", ".join(f"count(*) FILTER (WHERE v BETWEEN {lo} AND {hi})" for lo, hi in candidates)
            n, lo_seen, hi_seen, *counts = cur.execute(
                f"SELECT count(v), min(v), max(v), {inside} FROM (SELECT {v} AS v FROM {table})").fetchone()
            if lo_seen is not None and lo_seen < 1:  # a 0 on a ten-point scale is an answer, not a typo
                counts = [0 if c == (1, 10) else k for c, k in zip(candidates, counts)]
            # The smallest usual scale that holds (nearly) every value: a few typos (a 55 among 1–5
            # scores) are rejected row by row instead of stretching the scale for the whole file.
            scale = preferred
            for cand, k in zip(candidates, counts):
                if n and k >= SCALE_COVERAGE * n:
                    scale = cand
                    break
            opts = opts.replace(**{f"{score}_scale": scale})
            outside = n - counts[candidates.index(scale)] if n else 0
            notes.append(f"{score.upper()} read on a {scale[0]}–{scale[1]} scale"
                         + (f" (highest value seen: {hi_seen:g})" if hi_seen is not None else "")
                         + (f"; {outside} value{'s' if outside != 1 else ''} outside it will be rejected." if outside else "."))
    return opts, questions, notes


# ------------------------------------------------------------------------------------------------
# Parsing: SQL expressions that turn text into typed values (all user values bound as parameters)
# ------------------------------------------------------------------------------------------------
def _date_formats(order: str | None, short_year: bool = False) -> list[str]:
    """strptime formats for d/m/y or m/d/y dates. Four- and two-digit years get separate lists:
    ``%Y`` also accepts "24" and would read 12/31/24 as the year 24."""
    y = "%y" if short_year else "%Y"
    dates = {"dmy": [f"%d{{s}}%m{{s}}{y}"], "mdy": [f"%m{{s}}%d{{s}}{y}"],
             "ymd": [] if short_year else ["%Y{s}%m{s}%d"]}.get(order or "", [])
    times = ["", " %H:%M", " %H:%M:%S", " %H:%M:%S.%f", " %I:%M %p", " %I:%M:%S %p", "T%H:%M:%S", "T%H:%M"]
    out = []
    for d in dates:
        for s in ("/", "-", "."):
            for t in times:
                out.append(d.format(s=s) + t)
    return out


# Spaces, tabs, line breaks and no-break spaces: a cell of only these is empty (a comment of "\r\n").
_BLANKS = "' ' || chr(9) || chr(10) || chr(13) || chr(160)"


def _trimmed(i: int) -> str:
    return f"trim(c{i}, {_BLANKS})"


def _clean(i: int) -> str:
    return f"(CASE WHEN list_contains($nulls, {_trimmed(i)}) THEN NULL ELSE {_trimmed(i)} END)"


def _number_expr(v: str) -> str:
    """Text → DOUBLE under the decimal convention; a thousands separator is accepted only in its place."""
    s = f"regexp_replace({v}, '[\\s$€£¥]|R\\$|USD|EUR|GBP|BRL', '', 'g')"
    return (
        f"(CASE WHEN $decimal = ',' THEN TRY_CAST(replace(CASE WHEN regexp_matches({s}, '^[-+]?\\d{{1,3}}(\\.\\d{{3}})+(,\\d+)?$') "
        f"THEN replace({s}, '.', '') ELSE {s} END, ',', '.') AS DOUBLE) "
        f"ELSE TRY_CAST(CASE WHEN regexp_matches({s}, '^[-+]?\\d{{1,3}}(,\\d{{3}})+(\\.\\d+)?$') "
        f"THEN replace({s}, ',', '') ELSE {s} END AS DOUBLE) END)"
    )


def _sql_list(formats: list[str]) -> str:
    """A list literal of strptime formats. Formats come only from this module's constants."""
    assert all("'" not in f for f in formats)
    return "[" + ", ".join(f"'{f}'" for f in formats) + "]::VARCHAR[]"


def _timestamp_expr(v: str, date_order: str | None) -> str:
    """Text → naive UTC TIMESTAMP: ISO with or without offset, compact YYYYMMDD, d/m/y or m/d/y."""

    def local(x: str) -> str:
        # Timestamps written without an offset are in the import's time zone; store them as UTC.
        return f"(CASE WHEN $tz = 'UTC' THEN {x} ELSE CAST(timezone($tz, {x}) AS TIMESTAMP) END)"

    iso_offset = f"CAST(TRY_CAST({v} AS TIMESTAMPTZ) AS TIMESTAMP)"
    formats = _date_formats(date_order)
    slashed = local(f"try_strptime({v}, {_sql_list(formats)})") if formats else "NULL"
    short_formats = _date_formats(date_order, short_year=True)
    slashed_short = local(f"try_strptime({v}, {_sql_list(short_formats)})") if short_formats else "NULL"
    compact = local(f"try_strptime({v}, '%Y%m%d')")
    textual = local(f"try_strptime({v}, {_sql_list(TEXT_DATE_FORMATS)})")
    iso_local = local(f"TRY_CAST({v} AS TIMESTAMP)")
    return (
        f"(CASE WHEN {v} IS NULL THEN NULL "
        f"WHEN regexp_matches({v}, '^\\d{{4}}-\\d{{1,2}}-\\d{{1,2}}') THEN "
        f"(CASE WHEN length({v}) > 10 AND regexp_matches({v}, '(Z|[+-]\\d{{2}}(:?\\d{{2}})?)$') THEN {iso_offset} "
        f"ELSE {iso_local} END) "
        f"WHEN regexp_matches({v}, '^(1[89]|20|21)\\d{{6}}$') THEN {compact} "
        f"WHEN regexp_matches({v}, '^\\d{{1,2}}[/.-]\\d{{1,2}}[/.-]\\d{{2}}(\\D|$)') THEN {slashed_short} "
        f"WHEN regexp_matches({v}, '^\\d{{1,2}}[/.-]\\d{{1,2}}[/.-]\\d{{4}}') THEN {slashed} "
        f"ELSE {textual} END)"
    )


TEXT_DATE_FORMATS = ["%d %B %Y", "%d %b %Y", "%B %d, %Y", "%b %d, %Y", "%b %d %Y", "%d %b %Y %H:%M",
                     "%a, %d %b %Y %H:%M:%S", "%Y/%m/%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M"]


@dataclass
class _Plan:
    """The compiled parse of one import: select expressions and reject checks."""

    columns: list[str]  # target columns written to the table (fields, scale columns, dimensions)
    select: list[str]  # SQL expression for each target column, over src
    checks: list[tuple[str, str, str, str]]  # (condition, source column name, raw expr, reason)
    key: tuple[str, ...]
    generated_key: bool
    params: dict[str, Any]
    dims: dict[str, str]  # dimension name -> label


def _compile(kind: str, raw: RawFile, column_map: dict[str, str], opts: Options) -> _Plan:
    spec = TABLES[kind]
    sources = _field_sources(column_map, raw.columns)
    for f in sources:
        if f not in spec.field_names:
            raise MappingError(
                f"{f!r} is not a field of {kind}.", fix=f"Map columns to one of: {', '.join(spec.field_names)}."
            )
    missing = [f.name for f in spec.fields if f.required and f.name not in sources]
    if missing:
        labels = ", ".join(spec.field(m).label or m for m in missing)
        raise MappingError(
            f"Required field{'s' if len(missing) > 1 else ''} not mapped for {kind}: {labels}.",
            fix="Choose the column that holds " + (" and ".join(missing)) + " in the mapping (or --map COLUMN=FIELD).",
        )
    if kind == "responses" and not any(s in sources for s in ("nps", "csat", "ces")):
        raise MappingError(
            "No score column is mapped: a survey response needs an NPS, CSAT or CES score.",
            fix="Map the column with the 0–10 recommend score to nps, or the satisfaction/effort score to csat/ces.",
        )
    key_missing = [k for k in spec.key if k not in sources]
    generated_key = bool(key_missing)
    if key_missing and not (len(spec.key) == 1 and kind in ("responses", "orders", "tickets")):
        raise MappingError(f"The key of {kind} ({', '.join(spec.key)}) is not mapped.", fix="Map the ID column.")

    nulls = list(dict.fromkeys(opts.null_markers))
    params: dict[str, Any] = {
        "nulls": nulls, "decimal": opts.decimal or ".", "tz": opts.timezone,
        "earliest": EARLIEST, "latest": LATEST,
    }
    columns, select, checks = [], [], []
    for f in spec.fields:
        if f.name not in sources:
            continue
        i = sources[f.name]
        src_name = raw.columns[i]
        v = _clean(i)
        if f.kind in ("id", "dimension", "text"):
            expr = v
        elif f.kind == "timestamp":
            expr = _timestamp_expr(v, opts.date_order)
            checks.append((f"{v} IS NOT NULL AND {f.name} IS NULL", src_name, v,
                           _date_reason(opts)))
            checks.append((f"{f.name} IS NOT NULL AND ({f.name} < CAST($earliest AS TIMESTAMP) OR {f.name} >= CAST($latest AS TIMESTAMP))",
                           src_name, v, f"date outside {EARLIEST[:4]}–{LATEST[:4]}; check the date column and its format"))
        elif f.kind in ("number", "integer", "score"):
            expr = _number_expr(v)
            checks.append((f"{v} IS NOT NULL AND {f.name} IS NULL", src_name, v, "not a number"))
            if f.kind == "integer":
                checks.append((f"{f.name} IS NOT NULL AND ({f.name} <> round({f.name}) OR {f.name} < 0)", src_name, v,
                               "not a whole number of 0 or more"))
            if f.name == "nps":
                checks.append((f"nps IS NOT NULL AND (nps < 0 OR nps > 10 OR nps <> round(nps))", src_name, v,
                               "NPS score must be a whole number from 0 to 10"))
            elif f.kind == "score":
                lo, hi = getattr(opts, f"{f.name}_scale") or DEFAULT_SCALES[f.name]
                params[f"{f.name}_lo"], params[f"{f.name}_hi"] = lo, hi
                checks.append((f"{f.name} IS NOT NULL AND ({f.name} < ${f.name}_lo OR {f.name} > ${f.name}_hi)", src_name, v,
                               f"{f.name.upper()} score outside its {lo}–{hi} scale"))
            elif f.name in ("amount", "mrr", "quantity", "tenure"):
                checks.append((f"{f.name} IS NOT NULL AND {f.name} < 0", src_name, v,
                               f"negative {f.name}; import refunds as orders with status 'refunded' and a positive amount"
                               if f.name == "amount" else f"negative {f.name}"))
        elif f.kind == "flag":
            expr = (f"(CASE WHEN lower({v}) IN ('yes','y','true','t','1','churned','cancelled','canceled','x') THEN TRUE "
                    f"WHEN lower({v}) IN ('no','n','false','f','0','active','retained') THEN FALSE END)")
            checks.append((f"{v} IS NOT NULL AND {f.name} IS NULL", src_name, v, "not a yes/no value"))
        else:  # pragma: no cover - every kind is listed above
            raise AssertionError(f.kind)
        if f.kind in ("number", "score") and f.name in ("nps",):
            expr = f"CAST({expr} AS DOUBLE)"
        columns.append(f.name)
        select.append(expr)
        if f.required or f.name in spec.key:
            # Only when the cell is empty: a value that does not parse already has its own reason.
            checks.append((f"{v} IS NULL", src_name, v, f"{f.label or f.name} is missing"))
    if kind in SCALE_COLUMNS:
        for col, _ in SCALE_COLUMNS[kind]:
            if col == "tenure_unit":
                if "tenure" in sources:
                    params["tenure_unit"] = opts.tenure_unit
                    columns.append(col)
                    select.append("$tenure_unit")
                continue
            score, bound = col.split("_")
            if score in sources:
                lo, hi = getattr(opts, f"{score}_scale") or DEFAULT_SCALES[score]
                columns.append(col)
                select.append(str(int(lo if bound == "min" else hi)))
    dims: dict[str, str] = {}
    for col, target in column_map.items():
        if target.startswith("dim:"):
            name = target[4:]
            if re.fullmatch(r"c\d+", name) or name in spec.field_names:
                raise MappingError(f"{name!r} cannot name a dimension.", fix="Choose another name, e.g. " + slugify("dim " + name) + ".")
            if name in dims or name in columns:
                raise MappingError(f"Dimension {name!r} is mapped twice.", fix="Give each kept column its own name.")
            dims[name] = col
            columns.append(name)
            select.append(_clean(raw.columns.index(col)))
    return _Plan(columns, select, checks, spec.key, generated_key, params,
                 {name: col for name, col in dims.items()})


_ORDER_NAMES = {"dmy": "day-first", "mdy": "month-first", "ymd": "year-first"}


def _date_reason(opts: Options) -> str:
    order = _ORDER_NAMES.get(opts.date_order or "", "")
    return f"not a date{f' (read {order})' if order else ''}"


# ------------------------------------------------------------------------------------------------
# Import
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportResult:
    """The outcome of one import: the batch and its row accounting.

    ``rows_read = added + updated + unchanged + duplicates + rejected``: ``duplicates`` are rows that
    a later row of the same file with the same key replaced."""

    batch_id: int
    kind: str
    file_name: str
    rows_read: int
    added: int
    updated: int
    unchanged: int
    duplicates: int
    rejected: int
    column_map: dict[str, str]
    options: dict[str, Any]
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mapping"] = d.pop("column_map")
        d["notes"] = list(self.notes)
        return d


def _merge_map(columns: list[str], proposal: dict[str, str], user: dict[str, str] | None) -> dict[str, str]:
    if not user:
        return dict(proposal)
    unknown = [c for c in user if c not in columns]
    if unknown:
        raise MappingError(
            f"The file has no column {unknown[0]!r}.",
            fix=f"Use one of its columns: {', '.join(repr(c) for c in columns[:30])}{' …' if len(columns) > 30 else ''}.",
        )
    chosen = set(v for v in user.values() if v not in ("ignore",))
    merged = {c: ("ignore" if proposal.get(c) in chosen else proposal.get(c, "ignore")) for c in columns}
    merged.update(user)
    targets = [v for v in merged.values() if v != "ignore"]
    dup = {t for t in targets if targets.count(t) > 1}
    if dup:
        raise MappingError(f"{sorted(dup)[0]!r} is mapped from more than one column.", fix="Map each field from one column.")
    return merged


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def import_file(store: Store, path: str | Path, *, kind: str | None = None, column_map: dict[str, str] | None = None,
                options: Options | None = None, sheet: str | int | None = None, keep_extra: bool = False,
                save_mapping: bool = True, file_name: str | None = None,
                progress: Progress | None = None) -> ImportResult:
    """Import one export file as one batch, in one transaction; return the row accounting.

    ``column_map`` maps source columns to fields (``"dim:NAME"`` keeps a column as a dimension,
    ``"ignore"`` drops it); columns it leaves out are auto-mapped, or taken from the mapping saved
    for this header. File-level problems raise a ``cx.errors`` error and change nothing."""
    path = Path(path)
    note = progress or (lambda f, m: None)
    if kind is not None and kind not in KINDS:
        raise MappingError(f"Unknown kind {kind!r}.", fix=f"Use one of: {', '.join(KINDS)}.")
    note(0.05, "Reading the file")
    with store.cursor() as cur:
        raw = read_into(cur, path, sheet=sheet)
        try:
            return _import_raw(store, cur, raw, kind=kind, column_map=column_map, options=options,
                               keep_extra=keep_extra, save_mapping=save_mapping,
                               file_name=file_name or path.name, sha=_file_sha256(path), note=note)
        finally:
            raw.cleanup()


def import_frame(store: Store, kind: str, frame: pd.DataFrame, *, file_name: str,
                 progress: Progress | None = None) -> ImportResult:
    """Import a DataFrame whose columns are canonical field names (demo data, notebooks) as one batch."""
    spec = TABLES[kind]
    frame = frame.reset_index(drop=True)
    scale_opts: dict[str, Any] = {}
    for score in ("csat", "ces"):
        if f"{score}_min" in frame and f"{score}_max" in frame and frame[f"{score}_min"].notna().any():
            lo, hi = frame[f"{score}_min"].dropna(), frame[f"{score}_max"].dropna()
            if lo.nunique() > 1 or hi.nunique() > 1:
                raise MappingError(f"{score} scales differ between rows.", fix="Import each scale separately.")
            scale_opts[f"{score}_scale"] = (int(lo.iloc[0]), int(hi.iloc[0]))
    if "tenure_unit" in frame and frame["tenure_unit"].notna().any():
        scale_opts["tenure_unit"] = str(frame["tenure_unit"].dropna().iloc[0])
    cols = [c for c in frame.columns if c in spec.field_names]
    text = pd.DataFrame({c: _as_text(frame[c]) for c in cols})
    raw = RawFile(Path(file_name), "dataframe", cols, len(text))
    with store.cursor() as cur:
        cur.register("frame_source", text)
        try:
            cur.execute(f"CREATE TEMP TABLE raw AS {_positional_select(len(cols), 'frame_source')}")
        finally:
            cur.unregister("frame_source")
        options = Options(date_order="ymd", decimal=".", null_markers=("",), **scale_opts)
        return _import_raw(store, cur, raw, kind=kind, column_map={c: c for c in cols}, options=options,
                           keep_extra=False, save_mapping=False, file_name=file_name, sha=None,
                           note=progress or (lambda f, m: None))


def _as_text(s: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s):
        return s.dt.strftime("%Y-%m-%d %H:%M:%S.%f").where(s.notna(), None)
    if pd.api.types.is_bool_dtype(s):
        return s.map({True: "true", False: "false"})
    return s.astype("object").where(s.notna(), None).map(lambda v: v if v is None else str(v))


def _import_raw(store: Store, cur, raw: RawFile, *, kind: str | None, column_map: dict[str, str] | None,
                options: Options | None, keep_extra: bool, save_mapping: bool, file_name: str, sha: str | None,
                note: Progress) -> ImportResult:
    note(0.25, "Mapping columns")
    if not raw.columns:
        raise UnreadableFile(f"{file_name} has no columns.", fix="Export the data again with its columns.")
    signature = header_signature(raw.columns, raw.has_header)
    saved = _saved_mapping(cur, signature) if raw.file_format != "dataframe" else None
    fallback = None
    if saved and (kind is None or kind == saved["kind"]):
        kind = saved["kind"]
        proposal = {c: saved["mapping"].get(c, "ignore") for c in raw.columns}
        base_opts, fallback = _saved_options(saved)
    else:
        if raw.file_format == "dataframe":
            proposal = {c: "ignore" for c in raw.columns}
        else:
            cur.execute(f"CREATE OR REPLACE TEMP TABLE sample AS SELECT * FROM raw LIMIT {SAMPLE_ROWS}")
            profiles = profile_columns(cur, raw, "sample")
            prop = propose_mapping(raw.columns, profiles, kind, raw.has_header)
            if kind is None and column_map is None and prop.confidence < 0.5:
                shown = ", ".join(repr(c) for c in raw.columns[:8]) + (" …" if len(raw.columns) > 8 else "")
                raise MappingError(
                    f"Could not tell what {file_name} holds: its columns ({shown}) do not match the fields of "
                    f"any kind well enough (best guess: {prop.kind}, confidence {prop.confidence:.0%}).",
                    fix="Choose the kind (--kind) and map the columns (--map COLUMN=FIELD), or use the Data page.",
                )
            kind = kind or prop.kind
            proposal = prop.column_map
        base_opts = Options()
    if options is not None:
        base_opts = _overlay(base_opts, options)
    assert kind is not None
    mapping = _merge_map(raw.columns, proposal, column_map)
    if raw.nested:
        _check_nested(raw, mapping, file_name)
    if keep_extra:
        extra = [c for c, t in mapping.items() if t == "ignore" and c not in raw.nested]
        if len(extra) > MAX_EXTRA_DIMENSIONS:
            raise MappingError(f"{len(extra)} unmapped columns is too many to keep as dimensions.",
                               fix=f"Keep at most {MAX_EXTRA_DIMENSIONS}: choose them on the Data page or with --map COLUMN=dim:NAME.")
        used = {t[4:] for t in mapping.values() if t.startswith("dim:")}
        for c in extra:
            name = slugify(c)
            while name in used or name in TABLES[kind].field_names:
                name = (name + "_x")[:48]
            used.add(name)
            mapping[c] = f"dim:{name}"
    if len(set(raw.columns)) != len(raw.columns):
        dup = next(c for c in raw.columns if raw.columns.count(c) > 1)
        if any(t != "ignore" for c, t in mapping.items() if c == dup):
            raise MappingError(f"The header names {dup!r} more than once, so that column is ambiguous.",
                               fix="Rename the duplicated columns in the export and import it again.")
    if raw.file_format != "dataframe":
        opts, questions, notes = _detect_conventions(cur, raw, "raw", kind, _field_sources(mapping, raw.columns), base_opts,
                                                     fallback)
        if questions:
            raise AmbiguousValues(questions[0], fix="Choose the date order (--date-order dmy|mdy, or on the Data page).",
                                  question=questions[0], choices=("dmy", "mdy"))
    else:
        opts, notes = base_opts, []
    notes = [*raw.notes, *notes]
    if raw.nested:
        notes = [*notes, f"Left out {len(raw.nested)} column{'s' if len(raw.nested) > 1 else ''} of nested values "
                         f"(lists, structs or maps): {', '.join(raw.nested)}."]
    plan = _compile(kind, raw, mapping, opts)
    note(0.45, "Checking values")
    _stage(cur, raw, plan)
    note(0.7, "Writing to the store")
    try:
        with store._write_lock:
            cur.execute("BEGIN TRANSACTION")
            try:
                result = _upsert(store, cur, kind, raw, plan, mapping, opts, file_name, sha)
                if save_mapping and raw.file_format != "dataframe":
                    cur.execute(
                        "INSERT OR REPLACE INTO mappings VALUES (?, ?, ?, ?, ?, now(), "
                        "coalesce((SELECT uses FROM mappings WHERE signature = ?), 0) + 1)",
                        [signature, kind, json.dumps(mapping), json.dumps(opts.as_dict()),
                         json.dumps(raw.columns), signature],
                    )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
    except duckdb.Error as exc:
        raise TouchpointError(f"The import of {file_name} failed and was rolled back: {_first_line(exc)}",
                              fix="Nothing was changed. Check the file and try again.") from exc
    from cx.voice import refresh_after_import  # sentiment and themes of the comments, after the commit
    refresh_after_import(store, kind, note)
    note(1.0, "Done")
    return replace(result, notes=tuple(notes))


def _nested_kind(typ: str) -> str:
    return ("a struct" if typ.startswith("STRUCT") else "a map" if typ.startswith("MAP")
            else "a union" if typ.startswith("UNION") else "a list")


def _check_nested(raw: RawFile, mapping: dict[str, str], file_name: str) -> None:
    """A column of lists, structs or maps cannot feed a field. One that is mapped, or whose name is a
    field's own name (an "nps" column of lists), is an error rather than a silently missing field."""
    for col, typ in raw.nested.items():
        target = mapping.get(col, "ignore")
        named = [f for k in KINDS for f, syns in SYNONYMS[k].items() if _name_score(col, syns) >= 0.95]
        if target != "ignore" or named:
            what = target[4:] if target.startswith("dim:") else target if target != "ignore" else named[0]
            raise MappingError(
                f"Column {col!r} of {file_name} holds {_nested_kind(typ)} in each row ({typ}), not one value, "
                f"so it cannot be read as {what}.",
                fix="Export that column with one plain value per row (flatten or unnest it), or rename it so it is "
                    "left out.",
            )


def _overlay(base: Options, user: Options) -> Options:
    """User options win where they differ from the defaults."""
    default = Options()
    changes = {k: getattr(user, k) for k in Options.__dataclass_fields__ if getattr(user, k) != getattr(default, k)}
    return base.replace(**changes)


def _stage(cur, raw: RawFile, plan: _Plan) -> None:
    """parsed(_row, fields…) and bad(_row, column, value, reason) as temporary tables."""
    # Each source cell is cleaned (trimmed, null markers to NULL) once, in an inner select, rather
    # than at every use inside the parse expressions.
    n = len(raw.columns)
    exprs = list(plan.select)
    for i in range(n):
        exprs = [e.replace(_clean(i), f"_v{i}") for e in exprs]
    sql = (
        "CREATE OR REPLACE TEMP TABLE parsed AS SELECT _row, "
        + ", ".join(f"{expr} AS {quote_ident(col)}" for col, expr in zip(plan.columns, exprs))
        + (", " + ", ".join(f"c{i}" for i in range(n)))
        + " FROM (SELECT rowid + 1 AS _row, "
        + ", ".join(f"c{i}, {_clean(i)} AS _v{i}" for i in range(n))
        + " FROM raw)"
    )
    used = set(re.findall(r"\$([a-z_]+)", sql))
    cur.execute(sql, {k: v for k, v in plan.params.items() if k in used})
    if plan.checks:
        # One scan of parsed finds the rows that fail any check (usually few); the per-check union
        # then runs over those rows only.
        suspect = ("CREATE OR REPLACE TEMP TABLE suspect AS SELECT * FROM parsed WHERE "
                   + " OR ".join(f"({cond})" for cond, _, _, _ in plan.checks))
        used = set(re.findall(r"\$([a-z_]+)", suspect))
        cur.execute(suspect, {k: v for k, v in plan.params.items() if k in used})
        union = " UNION ALL ".join(
            f"SELECT _row, ? AS column_name, CAST({rawv} AS VARCHAR) AS value, ? AS reason FROM suspect WHERE {cond}"
            for cond, _, rawv, _ in plan.checks
        )
        args: list[Any] = []
        for _, col, _, reason in plan.checks:
            args += [col, reason]
        # Named and positional parameters cannot be mixed: inline the named ones as positional.
        sql, values = _positional(union, plan.params, args, [c for c in plan.checks])
        cur.execute(f"CREATE OR REPLACE TEMP TABLE bad AS {sql}", values)
    else:
        cur.execute("CREATE OR REPLACE TEMP TABLE bad (_row BIGINT, column_name VARCHAR, value VARCHAR, reason VARCHAR)")


def _positional(sql: str, named: dict[str, Any], args: list[Any], checks) -> tuple[str, list[Any]]:
    """Rewrite ``$name`` parameters to ``?`` in order, merging them with the positional ones."""
    values: list[Any] = []
    arg_iter = iter(args)
    out = []
    for token in re.split(r"(\$[a-z_]+|\?)", sql):
        if token == "?":
            values.append(next(arg_iter))
            out.append("?")
        elif token.startswith("$") and token[1:] in named:
            values.append(named[token[1:]])
            out.append("?")
        else:
            out.append(token)
    return "".join(out), values


def _upsert(store: Store, cur, kind: str, raw: RawFile, plan: _Plan, mapping: dict[str, str], opts: Options,
            file_name: str, sha: str | None) -> ImportResult:
    spec = TABLES[kind]
    batch_id = int(cur.execute("SELECT nextval('batch_seq')").fetchone()[0])
    for name, col in plan.dims.items():
        store.add_dimension(cur, kind, name, col)
    cols = plan.columns
    qcols = [quote_ident(c) for c in cols]
    key = list(plan.key)
    if plan.generated_key:
        # A content hash, plus the occurrence number among identical rows of this file: re-importing
        # the file gives the same ids, and two identical rows (two real purchases) both stay.
        content = "concat_ws(chr(31), " + ", ".join(f"coalesce(CAST({q} AS VARCHAR), chr(0))" for q in qcols) + ")"
        keyexpr = (f"'g' || substr(md5({content} || '#' || CAST(row_number() OVER (PARTITION BY {content} ORDER BY _row) AS VARCHAR)), 1, 24)")
        key_col = key[0]
        cols_nokey = [c for c in cols if c != key_col]
        select_cols = [quote_ident(c) for c in cols_nokey]
        key_select = f"{keyexpr} AS {quote_ident(key_col)}"
    else:
        select_cols = qcols
        key_select = None
    all_cols = ([key[0]] if plan.generated_key else []) + [c for c in cols if not (plan.generated_key and c == key[0])]
    q_all = [quote_ident(c) for c in all_cols]
    hash_expr = "md5(concat_ws(chr(31), " + ", ".join(f"coalesce(CAST({q} AS VARCHAR), chr(0))" for q in q_all) + "))"
    sel = ", ".join(([key_select] if key_select else []) + select_cols)
    cur.execute(
        f"CREATE OR REPLACE TEMP TABLE valid AS SELECT _row, {sel} FROM parsed WHERE _row NOT IN (SELECT _row FROM bad)"
    )
    keycols = ", ".join(quote_ident(k) for k in key)
    # The window de-duplication sorts every row; a grouping finds out more cheaply whether any key
    # repeats, and without repeats every valid row is staged as it is.
    repeats = cur.execute(f"SELECT EXISTS (SELECT 1 FROM valid GROUP BY {keycols} HAVING count(*) > 1)").fetchone()[0]
    t = quote_ident(kind)
    h = quote_ident(f"{kind}_history")
    # Into an empty table (a first import) nothing can match: without repeated keys the staged rows
    # are the valid rows, hashed once as they are inserted, and the key join is skipped.
    first = bool(cur.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {t})").fetchone()[0])
    direct = first and not repeats
    stage = "stage_direct" if direct else "stage"
    cur.execute(
        f"CREATE OR REPLACE TEMP {'VIEW' if direct else 'TABLE'} {stage} AS SELECT {', '.join(q_all)}, "
        f"{hash_expr} AS row_hash FROM valid "
        + (f"QUALIFY row_number() OVER (PARTITION BY {keycols} ORDER BY _row DESC) = 1" if repeats else "")
    )
    n_valid = cur.execute("SELECT count(*) FROM valid").fetchone()[0]
    n_stage = n_valid if direct else cur.execute("SELECT count(*) FROM stage").fetchone()[0]
    on = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in key)
    if first:
        unchanged, updated = 0, 0
    else:
        cur.execute(
            f"CREATE OR REPLACE TEMP TABLE matched AS SELECT s.{', s.'.join(quote_ident(k) for k in key)}, "
            f"(t.row_hash = s.row_hash) AS same FROM stage s JOIN {t} t ON {on}"
        )
        unchanged, updated = cur.execute(
            "SELECT count(*) FILTER (WHERE same), count(*) FILTER (WHERE NOT same) FROM matched"
        ).fetchone()
    unchanged, updated = int(unchanged or 0), int(updated or 0)
    added = n_stage - unchanged - updated
    on_m = " AND ".join(f"t.{quote_ident(k)} = m.{quote_ident(k)}" for k in key)
    if updated or unchanged:
        # Unchanged rows are restamped with this batch too, their earlier version kept in history:
        # then removing either batch leaves the row delivered by the other one in place.
        cur.execute(f"INSERT INTO {h} BY NAME SELECT t.* FROM {t} t JOIN matched m ON {on_m}")
        cur.execute(f"DELETE FROM {t} t USING matched m WHERE {on_m}")
    cur.execute(f"INSERT INTO {t} BY NAME SELECT s.* EXCLUDE (row_hash), s.row_hash, ? AS batch_id FROM {stage} s",
                [batch_id])
    # Rejects: those of the parser (malformed lines) and those of the values.
    cur.execute("CREATE OR REPLACE TEMP TABLE bad_rows AS SELECT DISTINCT _row FROM bad")
    value_rejects = cur.execute("SELECT count(*) FROM bad_rows").fetchone()[0]
    # Row numbers count every data row of the file, so a row read after k malformed lines is k rows
    # further down. The i-th malformed line (0-based, in order) at line l follows l - 1 - i readable
    # rows, so it lies before readable row r exactly when l - i <= r.
    shifts = [line - i for i, line in enumerate(sorted(r[0] for r in raw.parse_rejects))]
    cur.execute(
        "INSERT INTO rejects SELECT ?, _row + (SELECT count(*) FROM (SELECT unnest(?::BIGINT[]) AS l) WHERE l <= _row), "
        "column_name, left(value, 500), reason FROM bad",
        [batch_id, shifts],
    )
    for line, col, text, reason in raw.parse_rejects:
        cur.execute("INSERT INTO rejects VALUES (?, ?, ?, ?, ?)", [batch_id, line, col, text, f"unreadable line: {reason}"])
    rejected = int(value_rejects) + len(raw.parse_rejects)
    rows_read = raw.rows + len(raw.parse_rejects)
    duplicates = int(n_valid - n_stage)
    cur.execute(
        "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
        [batch_id, kind, file_name, sha, raw.file_format, rows_read, added, updated, unchanged, duplicates, rejected,
         json.dumps(mapping), json.dumps(opts.as_dict())],
    )
    cur.execute("UPDATE meta SET data_version = data_version + 1")
    return ImportResult(batch_id, kind, file_name, rows_read, int(added), updated, unchanged, duplicates, rejected,
                        mapping, opts.as_dict())


# ------------------------------------------------------------------------------------------------
# Batches
# ------------------------------------------------------------------------------------------------
def list_batches(store: Store) -> pd.DataFrame:
    """One row per import batch, newest first, with its row accounting and the rows it still holds."""
    with store.cursor() as cur:
        df = cur.execute(
            "SELECT batch_id, kind, file_name, file_format, imported_at, rows_read, added, updated, unchanged, "
            "duplicates, rejected FROM batches ORDER BY batch_id DESC"
        ).df()
        if not df.empty:
            held = {}
            for kind in TABLES:
                for b, n in cur.execute(f"SELECT batch_id, count(*) FROM {kind} GROUP BY batch_id").fetchall():
                    held[b] = held.get(b, 0) + n
            df["rows_now"] = df["batch_id"].map(held).fillna(0).astype("int64")
    return df


def batch_rejects(store: Store, batch_id: int, limit: int | None = None) -> pd.DataFrame:
    """The rows a batch rejected: row number (data rows, header excluded), column, value and reason."""
    with store.cursor() as cur:
        if cur.execute("SELECT count(*) FROM batches WHERE batch_id = ?", [batch_id]).fetchone()[0] == 0:
            raise UnknownBatch(f"There is no batch {batch_id}.", fix="List the batches with `python -m cx batches`.")
        sql = "SELECT row_number AS row, column_name AS column, value, reason FROM rejects WHERE batch_id = ? ORDER BY row_number, column_name"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return cur.execute(sql, [batch_id]).df()


def remove_batch(store: Store, batch_id: int) -> dict[str, Any]:
    """Remove one batch in one transaction: its rows go, and rows it had overwritten come back."""
    restored_total = removed_total = 0
    with store.transaction() as cur:
        row = cur.execute("SELECT kind, file_name FROM batches WHERE batch_id = ?", [batch_id]).fetchone()
        if row is None:
            raise UnknownBatch(f"There is no batch {batch_id}.", fix="List the batches with `python -m cx batches`.")
        for kind, spec in TABLES.items():
            t, h = quote_ident(kind), quote_ident(f"{kind}_history")
            keys = ", ".join(quote_ident(k) for k in spec.key)
            on = " AND ".join(f"x.{quote_ident(k)} = y.{quote_ident(k)}" for k in spec.key)
            cur.execute(f"CREATE OR REPLACE TEMP TABLE gone AS SELECT {keys} FROM {t} WHERE batch_id = ?", [batch_id])
            removed = cur.execute("SELECT count(*) FROM gone").fetchone()[0]
            cur.execute(f"DELETE FROM {t} WHERE batch_id = ?", [batch_id])
            cur.execute(f"DELETE FROM {h} WHERE batch_id = ?", [batch_id])
            if removed:
                cur.execute(
                    f"CREATE OR REPLACE TEMP TABLE back AS SELECT x.* FROM {h} x SEMI JOIN gone y ON {on} "
                    f"QUALIFY row_number() OVER (PARTITION BY {', '.join('x.' + quote_ident(k) for k in spec.key)} ORDER BY x.batch_id DESC) = 1"
                )
                restored = cur.execute("SELECT count(*) FROM back").fetchone()[0]
                if restored:
                    cur.execute(f"INSERT INTO {t} BY NAME SELECT * FROM back")
                    on_b = " AND ".join(f"x.{quote_ident(k)} = y.{quote_ident(k)}" for k in spec.key)
                    cur.execute(f"DELETE FROM {h} x USING back y WHERE {on_b} AND x.batch_id = y.batch_id")
                restored_total += restored
                removed_total += removed
        cur.execute("DELETE FROM rejects WHERE batch_id = ?", [batch_id])
        cur.execute("DELETE FROM batches WHERE batch_id = ?", [batch_id])
        cur.execute("UPDATE meta SET data_version = data_version + 1")
    return {"batch_id": batch_id, "kind": row[0], "file_name": row[1], "rows_removed": int(removed_total),
            "rows_restored": int(restored_total)}


def list_mappings(store: Store) -> pd.DataFrame:
    """Saved mappings: kind, the columns they recognise, when saved and how often used."""
    with store.cursor() as cur:
        return cur.execute("SELECT signature, kind, columns, mapping, saved_at, uses FROM mappings ORDER BY saved_at DESC").df()


def delete_mapping(store: Store, signature: str) -> None:
    """Forget a saved mapping (the next file of that shape is auto-mapped again)."""
    with store.transaction() as cur:
        cur.execute("DELETE FROM mappings WHERE signature = ?", [signature])
