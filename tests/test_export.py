"""Table exports are safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io

import pandas as pd
from openpyxl import load_workbook

from cx.export import to_csv_bytes, to_xlsx_bytes

HOSTILE = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tTAB", "\rCR", "plain", "=HYPERLINK(\"http://x\")"]


def test_csv_cells_that_start_like_formulas_get_a_leading_quote():
    text = to_csv_bytes(pd.DataFrame({"comment": HOSTILE})).decode("utf-8-sig")
    cells = [row[0] for row in csv.reader(io.StringIO(text, newline=""))][1:]
    assert cells[:6] == ["'=1+1", "'+SUM(A1)", "'-2+3", "'@cmd", "'\tTAB", "'\rCR"]
    assert cells[6] == "plain"


def test_xlsx_holds_text_never_formulas():
    frame = pd.DataFrame({"comment": HOSTILE, "n": range(len(HOSTILE)),
                          "at": pd.to_datetime(["2026-01-01T10:00Z"] * len(HOSTILE))})
    wb = load_workbook(io.BytesIO(to_xlsx_bytes(frame)))
    ws = wb.active
    values = [ws.cell(row=r, column=1).value for r in range(2, len(HOSTILE) + 2)]
    types = [ws.cell(row=r, column=1).data_type for r in range(2, len(HOSTILE) + 2)]
    assert set(types) == {"s"}  # strings, not formulas ("f")
    assert values[0] == "'=1+1" and values[6] == "plain"
    assert ws.cell(row=2, column=2).value == 0 and ws.cell(row=9, column=2).value == 7
