"""Workbooks people read: styled headers, frozen panes, column widths, number formats, colour
scales on variances and p-values. Every file is written atomically (a crash leaves the old one).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.formatting.rule import ColorScaleRule
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from utils.io import atomic_path

HEADER_FONT = Font(bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="1F4E78")
HEADER_ALIGNMENT = Alignment(wrap_text=True, vertical="center", horizontal="center")
WRAP = Alignment(wrap_text=True, vertical="top")
MAX_WIDTH = 60
# variance: white (low) → orange (high); p-value: red (0) → yellow (0.05) → white (1)
VARIANCE_SCALE = dict(start_type="min", start_color="FFFFFF", end_type="max", end_color="F4A460")
P_VALUE_SCALE = dict(start_type="num", start_value=0, start_color="F8696B",
                     mid_type="num", mid_value=0.05, mid_color="FFEB84",
                     end_type="num", end_value=1, end_color="FFFFFF")


def is_p_value(column: str) -> bool:
    return "P-Value" in column or "(Holm)" in column


def is_variance(column: str) -> bool:
    return "Variance" in column and "Ratio" not in column


def number_format(column: str, series: pd.Series, decimals: int) -> str | None:
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return None
    if pd.api.types.is_integer_dtype(series):
        return "0"
    if is_p_value(column):
        return "0.0000"
    return "0." + "0" * decimals


def style_sheet(sheet: Worksheet, frame: pd.DataFrame, decimals: int = 3,
                wrap_columns: tuple[str, ...] = ()) -> None:
    """Style a sheet that `frame.to_excel(index=False)` wrote."""
    last_row = len(frame) + 1
    for cell in sheet[1]:
        cell.font, cell.fill, cell.alignment = HEADER_FONT, HEADER_FILL, HEADER_ALIGNMENT
    sheet.freeze_panes = "B2"
    if len(frame.columns):
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(frame.columns))}{last_row}"
    for index, column in enumerate(frame.columns, start=1):
        letter = get_column_letter(index)
        series = frame[column]
        fmt = number_format(str(column), series, decimals)
        if fmt is None:
            longest = series.astype(str).str.len().max() if len(series) else 0
            width = min(MAX_WIDTH, max(10, int(longest or 0) + 2))
        else:
            width = 12
        if column in wrap_columns:
            width = 100
        sheet.column_dimensions[letter].width = max(width, min(24, len(str(column)) * 0.8 + 2))
        if len(frame) == 0:
            continue
        cells = f"{letter}2:{letter}{last_row}"
        if fmt is not None:
            for (cell,) in sheet[cells]:
                cell.number_format = fmt
        if column in wrap_columns:
            for (cell,) in sheet[cells]:
                cell.alignment = WRAP
        if fmt is not None and is_p_value(str(column)):
            sheet.conditional_formatting.add(cells, ColorScaleRule(**P_VALUE_SCALE))
        elif fmt is not None and is_variance(str(column)):
            sheet.conditional_formatting.add(cells, ColorScaleRule(**VARIANCE_SCALE))
    sheet.row_dimensions[1].height = 32


def excel_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the control characters that XML (so xlsx) cannot hold removed from its text
    cells: a model's raw answer may contain them, and openpyxl refuses the whole workbook."""
    text_columns = [column for column in frame.columns if not pd.api.types.is_numeric_dtype(frame[column])]
    if not text_columns:
        return frame
    safe = frame.copy()
    for column in text_columns:
        safe[column] = safe[column].map(lambda v: ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v)
    return safe


def write_workbook(path: str | Path, sheets: dict[str, pd.DataFrame], decimals: int = 3,
                   wrap_columns: tuple[str, ...] = ("What it means / tests",)) -> Path:
    """One styled sheet per frame, written atomically to `path`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            for name, frame in sheets.items():
                excel_safe(frame).to_excel(writer, sheet_name=name, index=False)
                style_sheet(writer.sheets[name], frame, decimals, wrap_columns)
    return path


def write_csv(path: str | Path, frame: pd.DataFrame) -> Path:
    """CSV with 6 significant digits, written atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    return path


def notes_frame(lines: list[str]) -> pd.DataFrame:
    """The Notes sheet: what was left out while reading (or that nothing was)."""
    return pd.DataFrame({"Note": lines or ["every file, iteration and answer was read"]})
