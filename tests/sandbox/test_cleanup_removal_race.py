"""A sweep that meets a removal the engine is already doing waits for it (sandbox.cleanup).

make test-repeat, 2026-11-25: the teardown sweep of tests/sandbox/test_runner.py failed with
the engine's 409 "removal of container ... is already in progress": under load the run's
own removal request timed out while the engine went on removing. The engine's answers are
played by a stand-in here (the race cannot be produced on demand); the sweep itself runs
against real engines in every engine test's teardown."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest
import requests

from sandbox import cleanup
from sandbox.errors import SandboxError
from sandbox.policy import LABEL_MANAGED, LABEL_NODE

ID = "a40a73f970254883eb6727f1ec1bbc53287670247b31023184b370d7c1d69337"


def _conflict() -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = 409
    return docker.errors.APIError(
        "409 Client Error: Conflict", response=response,
        explanation=f"removal of container {ID} is already in progress")


class EngineRemovingIt:
    """An engine already removing the one listed container: removal answers 409, and the
    container is gone after ``inspections_left`` inspections."""

    def __init__(self, inspections_left: int) -> None:
        self.inspections_left = inspections_left
        self.api = self

    def containers(self, all: bool, filters: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"Id": ID, "Names": ["/lc-run"], "State": "running",
                 "Labels": {LABEL_MANAGED: "1", LABEL_NODE: "node-a"}}]

    def remove_container(self, container_id: str, force: bool, v: bool) -> None:
        raise _conflict()

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        if self.inspections_left <= 0:
            raise docker.errors.NotFound("gone")
        self.inspections_left -= 1
        return {"State": {"Status": "removing"}}


def test_a_removal_in_progress_is_waited_for_and_counted_removed() -> None:
    engine = EngineRemovingIt(inspections_left=3)
    done = cleanup.sweep(engine, "node-a")  # type: ignore[arg-type]
    assert [c.id for c in done.removed] == [ID] and engine.inspections_left == 0


def test_a_removal_that_never_ends_is_an_error_naming_the_container(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cleanup, "REMOVAL_WAIT_S", 0.5)
    with pytest.raises(SandboxError, match=f"cannot remove job container lc-run \\({ID[:12]}"):
        cleanup.sweep(EngineRemovingIt(inspections_left=10**6), "node-a")  # type: ignore[arg-type]


def test_another_conflict_is_still_an_error() -> None:
    class OtherConflict(EngineRemovingIt):
        def remove_container(self, container_id: str, force: bool, v: bool) -> None:
            response = requests.Response()
            response.status_code = 409
            raise docker.errors.APIError("409", response=response, explanation="paused")

    with pytest.raises(SandboxError, match="cannot remove job container"):
        cleanup.sweep(OtherConflict(inspections_left=0), "node-a")  # type: ignore[arg-type]
