"""``learningchain job ...`` commands that talk to a node, on the ``job`` group of
``sandbox.cli`` (which holds ``init`` and ``build``).

- ``client.cli.job_submit_commands``: ``submit`` (image choice: ``job_image``);
- ``client.cli.job_view_commands``: ``status``, ``list``, ``leaderboard``, ``logs``,
  ``fetch-model``;
- ``client.cli.job_watch_commands``: ``watch``.

Importing this module registers all of them; the text they share is
``client.cli.job_describe``.
"""

from __future__ import annotations

from client.cli import job_submit_commands, job_view_commands, job_watch_commands
from client.cli.job_describe import describe_job
from client.cli.job_submit_commands import build_spec
from client.cli.job_watch_commands import event_text, job_events
from sandbox.cli import job

__all__ = ["build_spec", "describe_job", "event_text", "job", "job_events",
           "job_submit_commands", "job_view_commands", "job_watch_commands"]
