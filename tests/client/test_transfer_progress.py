"""Upload progress of ``job submit`` (``client.cli.job.transfer_progress``): a bar per blob on a
terminal, plain lines in a pipe or a log, one line for a blob the node holds already."""

from __future__ import annotations

import io

from client.cli.job.transfer_progress import TransferProgress


def test_off_a_terminal_progress_is_plain_lines_and_each_blob_ends_with_one_complete_line(
        ) -> None:
    stream = io.StringIO()
    with TransferProgress(False, stream=stream, terminal=False, every_s=0.0) as bars:
        bars.held("image layer 0", b"\xab" * 32, 1_073_741_824)
        progress = bars.blob("image layer 2", 3_000)
        for done in (0, 1_000, 3_000, 3_000):
            progress(done, 3_000)
    lines = stream.getvalue().splitlines()
    assert lines[0] == ("image layer 0: blob abababababababab (1,073,741,824 bytes) already on "
                        "the node, not sent")
    assert lines[1:3] == ["uploading image layer 2: 0 / 3,000 bytes (0%)",
                          "uploading image layer 2: 1,000 / 3,000 bytes (33%)"]
    assert lines[3].startswith("uploading image layer 2: 3,000 / 3,000 bytes (100%), ")
    assert lines[3].endswith(" MB/s") and len(lines) == 4, lines
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def test_quiet_shows_only_what_was_held_and_what_completed() -> None:
    stream = io.StringIO()
    with TransferProgress(True, stream=stream, terminal=True, every_s=0.0) as bars:
        progress = bars.blob("data train", 10)
        progress(5, 10)
        progress(10, 10)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("uploading data train: 10 / 10 bytes (100%)")


def test_on_a_terminal_each_blob_has_a_live_bar() -> None:
    stream = io.StringIO()
    with TransferProgress(False, stream=stream, terminal=True) as bars:
        assert bars.live
        bars.held("image config", b"\x01" * 32, 729)
        progress = bars.blob("image layer 2", 2_000_000)
        progress(1_000_000, 2_000_000)
        progress(2_000_000, 2_000_000)
    text = stream.getvalue()
    assert "image config: blob 0101010101010101 (729 bytes) already on the node" in text
    assert "uploading image layer 2" in text and "2.0/2.0 MB" in text
