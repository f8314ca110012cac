"""Which line of a failed run's log ``job watch`` and ``job status`` show [API-JOBLOG.1].

A container's stdout and stderr reach the log through two pipes and interleave, even
inside one line: the CI run of this session saw a stdout line land between a traceback's
four-space indent and its source line, which made ``rate = 1 / 0`` the first unindented
line after the header. The line shown must still be the exception's.
"""

from __future__ import annotations

from client.cli.job.describe import last_log_line

INTERLEAVED = ('\x1b]0;pwned\x07about to divide\nTraceback (most recent call last):\n'
               '  File "/job/train", line 7, in <module>\n    training starts\n'
               'rate = 1 / 0\n           ~~^~~\nZeroDivisionError: division by zero\n')


def test_api_joblog_1_the_exception_line_survives_interleaved_streams() -> None:
    """[API-JOBLOG.1] The exception's line, wherever stdout landed inside the traceback."""
    assert last_log_line({"log": INTERLEAVED}) == "ZeroDivisionError: division by zero"
    after = INTERLEAVED + "loss: 0.5\n"  # a stdout line printed late looks like "x: y"
    assert last_log_line({"log": after}) == "ZeroDivisionError: division by zero"
    ordered = ("training starts\nTraceback (most recent call last):\n  File \"/job/train\", "
               "line 7, in <module>\n    rate = 1 / 0\nZeroDivisionError: division by zero\n")
    assert last_log_line({"log": ordered}) == "ZeroDivisionError: division by zero"


def test_api_joblog_1_other_exceptions_and_logs_without_a_traceback() -> None:
    """[API-JOBLOG.1] Bare and dotted exception names; no traceback: the last line."""
    header = "Traceback (most recent call last):\n  File \"x\", line 1, in <module>\n"
    assert last_log_line({"log": header + "KeyboardInterrupt\n"}) == "KeyboardInterrupt"
    assert last_log_line({"log": header + "mylib.Boom: bad input\n"}) == "mylib.Boom: bad input"
    assert last_log_line({"log": header + "what = went wrong\n"}) == "what = went wrong"
    assert last_log_line({"log": "epoch 1\nkilled by the limit\n\n"}) == "killed by the limit"
    assert last_log_line({"log": ""}) == ""
