"""Table exports that are safe to open in a spreadsheet."""

from __future__ import annotations

import io

import pandas as pd

# A cell starting with one of these is run as a formula by Excel, LibreOffice and Google Sheets.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` where text cells that a spreadsheet would run as formulas start with a quote."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v
            )
    out.columns = [("'" + c if isinstance(c, str) and c.startswith(FORMULA_PREFIXES) else c) for c in out.columns]
    return out


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV (with a byte-order mark, so Excel reads accents right) of a formula-safe copy."""
    buf = io.StringIO()
    # RFC 4180 line ends: the writer then quotes any cell holding a CR or LF, so a stray carriage
    # return in a comment cannot split its row in Excel.
    neutralise_formulas(frame).to_csv(buf, index=False, lineterminator="\r\n")
    return buf.getvalue().encode("utf-8-sig")


def to_xlsx_bytes(frame: pd.DataFrame, sheet_name: str = "Touchpoint") -> bytes:
    """An .xlsx workbook of a formula-safe copy of ``frame``. xlsxwriter is told never to turn text into
    formulas or links, and text cells a spreadsheet would run anyway start with a quote."""
    buf = io.BytesIO()
    safe = neutralise_formulas(frame)
    for col in safe.columns:  # Excel has no time zones: write UTC wall-clock times
        if isinstance(safe[col].dtype, pd.DatetimeTZDtype):
            safe[col] = safe[col].dt.tz_convert("UTC").dt.tz_localize(None)
    with pd.ExcelWriter(buf, engine="xlsxwriter",
                        engine_kwargs={"options": {"strings_to_formulas": False, "strings_to_urls": False}}) as xl:
        safe.to_excel(xl, index=False, sheet_name=sheet_name[:31])
    return buf.getvalue()
