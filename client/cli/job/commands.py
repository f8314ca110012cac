"""``learningchain job ...`` commands that talk to a node, on the ``job`` group of
``sandbox.cli`` (which holds ``init`` and ``build``).

- ``client.cli.job.submit``: ``submit`` (image choice: ``job_image``);
- ``client.cli.job.view``: ``status``, ``list``, ``leaderboard``, ``logs``,
  ``fetch-model``;
- ``client.cli.job.watch``: ``watch``.

Importing this module registers all of them; the text they share is
``client.cli.job.describe``.
"""

from __future__ import annotations

from client.cli.job import submit as job_submit_commands
from client.cli.job import view as job_view_commands
from client.cli.job import watch as job_watch_commands
from client.cli.job.describe import describe_job
from client.cli.job.submit import build_spec
from client.cli.job.watch import event_text, job_events
from sandbox.cli import job

__all__ = ["build_spec", "describe_job", "event_text", "job", "job_events",
           "job_submit_commands", "job_view_commands", "job_watch_commands"]
