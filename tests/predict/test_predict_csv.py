"""The requester's CSV rows file: a header is a header by [PRED-CSV.1], never a guess that
charges for a wrong row, and a typo is an error on line 1 as on line 3 (issue 33)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from client.cli.main import cli
from client.cli.predict.input import BadInputFile, read_csv, read_rows

HEADER_NAMES = "a,b,c\n1,2,3\n4,5,6\n"
HEADER_PANDAS = "0,1,2\n1,2,3\n4,5,6\n"
NO_HEADER = "1,2,3\n4,5,6\n"
TYPO_LINE_1 = "1,2,3x\n4,5,6\n7,8,9\n"
TYPO_LINE_3 = "1,2,3\n4,5,6\n7,8,9x\n"


def csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rows.csv"
    path.write_text(text)
    return path


def refused(path: Path, header: bool | None = None) -> str:
    with pytest.raises(BadInputFile) as e:
        read_csv(path, header)
    return str(e.value)


def test_pred_csv_1_a_line_of_names_is_a_header_without_flags(tmp_path: Path) -> None:
    """[PRED-CSV.1] No flag: a first line with no number is a header; a first line of numbers
    is a row (both rows of a header-less file are charged, none lost)."""
    assert read_csv(csv(tmp_path, HEADER_NAMES)).tolist() == [[1, 2, 3], [4, 5, 6]]
    assert read_csv(csv(tmp_path, NO_HEADER)).tolist() == [[1, 2, 3], [4, 5, 6]]
    assert read_csv(csv(tmp_path, "\n\n" + HEADER_NAMES)).shape == (2, 3)  # blank lines


def test_pred_csv_1_a_numeric_pandas_header_is_refused_not_charged(tmp_path: Path) -> None:
    """[PRED-CSV.1] ``0,1,…,n-1`` (what pandas writes for a bare array) is neither skipped nor
    sent as a row without a flag: the error names line 1 and both flags; with ``--header`` it
    is skipped, with ``--no-header`` it is a row."""
    path = csv(tmp_path, HEADER_PANDAS)
    says = refused(path)
    assert "line 1 is 0,1,…,2" in says and "--header" in says and "--no-header" in says
    assert read_csv(path, True).tolist() == [[1, 2, 3], [4, 5, 6]]
    assert read_csv(path, False).tolist() == [[0, 1, 2], [1, 2, 3], [4, 5, 6]]
    written = tmp_path / "pandas.csv"  # pd.DataFrame(a).to_csv(path, index=False), verbatim
    written.write_text("0,1,2\n10.0,11.0,12.0\n13.0,14.0,15.0\n")
    assert "line 1 is 0,1,…,2" in refused(written)
    assert read_rows(written, True).tolist() == [[10, 11, 12], [13, 14, 15]]


def test_pred_csv_1_a_typo_on_line_1_is_an_error_like_line_3(tmp_path: Path) -> None:
    """[PRED-CSV.1] A header-less file whose first row has a typo loses no row silently: the
    error names line 1 and the cell, as the same typo on line 3 does."""
    first = refused(csv(tmp_path, TYPO_LINE_1))
    assert "line 1, column 3: '3x' is not a number" in first
    third = refused(csv(tmp_path, TYPO_LINE_3))
    assert "line 3, column 3: '9x' is not a number" in third
    assert "line 1, column 3: '3x' is not a number" in refused(csv(tmp_path, TYPO_LINE_1),
                                                                False)
    assert read_csv(csv(tmp_path, TYPO_LINE_1), True).tolist() == [[4, 5, 6], [7, 8, 9]]


def test_pred_csv_1_no_header_makes_a_name_line_an_error(tmp_path: Path) -> None:
    """[PRED-CSV.1] ``--no-header``: the first line is a row, so names there are an error;
    ``--header`` skips a first line of numbers that is not pandas' header."""
    assert "line 1, column 1: 'a' is not a number" in refused(csv(tmp_path, HEADER_NAMES),
                                                               False)
    assert read_csv(csv(tmp_path, NO_HEADER), True).tolist() == [[4, 5, 6]]


def test_pred_csv_1_npy_takes_no_header_flag(tmp_path: Path) -> None:
    """[PRED-CSV.1] A .npy array has no header: a flag with one is an error, not ignored."""
    path = tmp_path / "rows.npy"
    np.save(path, np.ones((2, 3)))
    assert read_rows(path).shape == (2, 3)
    with pytest.raises(BadInputFile, match=r"for \.csv files"):
        read_rows(path, True)


def test_pred_csv_1_predict_help_states_the_rule() -> None:
    """[PRED-CSV.1] ``predict --help`` names both flags and the rule, not "a header line is
    skipped"."""
    text = CliRunner().invoke(cli, ["predict", "--help"], terminal_width=200).output
    assert "--header / --no-header" in text and "header line is skipped" not in text
    assert "0,1,…,n-1" in text
