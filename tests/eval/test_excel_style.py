"""Workbooks hold whatever a model answered: text cells with control characters that XML cannot
carry are cleaned, not a crash that loses the whole report."""
import pandas as pd
from openpyxl import load_workbook

from eval.excel_style import write_workbook


def test_a_raw_answer_with_control_characters_is_written_without_them(tmp_path):
    answers = pd.DataFrame({"raw_answer": ['{"reasoning": "up\x1b[0m\x00", "sentiment": 0.5}', "plain"],
                            "sentiment": [0.5, None]})
    path = write_workbook(tmp_path / "metrics.xlsx", {"Predictions": answers})
    sheet = load_workbook(path)["Predictions"]
    assert [cell.value for cell in sheet["A"]] == ["raw_answer", '{"reasoning": "up[0m", "sentiment": 0.5}', "plain"]
    assert sheet["B2"].value == 0.5
