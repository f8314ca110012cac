"""Making the kernel's OOM killer choose one of gVisor's stubs, as in CI [JOB-EXIT.6].

What the clean-clone CI met at e6a829a and 61c2325: a warm run near its memory limit, the
kernel's OOM killer choosing a systrap stub (the host process that maps the job's memory,
665 MiB of it) over the Sentry, and runsc 20240729 hanging after it; the entry point,
silent, ran to its 180 s deadline and was reported ``timeout``. ``ExposeStubs`` makes the
kernel choose a stub the same way: the stubs of the job's sandbox (the Sentry's descendants)
are put first in the OOM killer's choice (``oom_score_adj`` 1000; raising needs no
capability, and a root without ``CAP_SYS_RESOURCE`` cannot lower the Sentry's instead).
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import docker

from sandbox.policy import LABEL_NODE

SENTRY = "runsc-sandbox"
"""The first word of the Sentry's command line; its descendants are the platform's stubs."""


@dataclass
class ExposeStubs:
    """Sets ``oom_score_adj`` 1000 on the stubs of every sandbox whose Sentry's command line
    names a container of ``node_id``, as soon as they appear, until ``stop``."""

    client: docker.DockerClient
    node_id: str
    exposed: set[int] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def __enter__(self) -> ExposeStubs:
        self.thread = threading.Thread(target=self.run, name="expose-stubs", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            ids = [c.id for c in self.client.containers.list(
                filters={"label": f"{LABEL_NODE}={self.node_id}"})]
            for pid in _stubs(ids):
                if pid not in self.exposed:
                    with contextlib.suppress(OSError):  # a stub that ended meanwhile
                        Path(f"/proc/{pid}/oom_score_adj").write_text("1000")
                        self.exposed.add(pid)


def _stubs(container_ids: list[str]) -> set[int]:
    parents: dict[int, int] = {}
    sentries = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        parents[int(entry)] = int(status.split("PPid:")[1].split()[0])
        if argv[0].decode(errors="replace") == SENTRY and any(
                cid.encode() in part for cid in container_ids for part in argv):
            sentries.add(int(entry))
    stubs: set[int] = set()
    grew = True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in sentries | stubs}
        grew = bool(found - stubs)
        stubs |= found
    return stubs

