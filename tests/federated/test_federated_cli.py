"""``learningchain federated join``'s argument checks, before any node starts."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from client.cli.main import cli


def test_join_refuses_bad_arguments_before_starting_a_node(tmp_path: Path) -> None:
    """[JOB-FED.1] The job id is 32 bytes of hex, the data folder exists, hyperparameters
    are a JSON object, the node's config loads; each mistake is a clear error, exit 1."""
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "missing.toml"
    runner = CliRunner()
    job = "ab" * 32
    cases = [
        (["federated", "join", "zz", "--data", str(data), "--config", str(config)],
         "bad argument"),
        (["federated", "join", "ab" * 8, "--data", str(data), "--config", str(config)],
         "32-byte hex id"),
        (["federated", "join", job, "--data", str(data), "--config", str(config),
          "--hyperparameters", "[1]"], "JSON object"),
        (["federated", "join", job, "--data", str(data), "--config", str(config),
          "--hyperparameters", "{"], "bad argument"),
        (["federated", "join", job, "--data", str(data), "--config", str(config)],
         str(config.name)),
    ]
    for args, message in cases:
        result = runner.invoke(cli, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
    missing = runner.invoke(cli, ["federated", "join", job, "--data", str(tmp_path / "none"),
                                  "--config", str(config)])
    assert missing.exit_code == 2 and "does not exist" in missing.output


class _SyncingNode:
    """A node handle's few parts ``when_job_known`` reads: a state that gains the job at a
    given block, block listeners, a wall clock."""

    def __init__(self, job_at: int | None) -> None:
        self.job_at, self.height, self.listeners = job_at, 0, []  # type: ignore[var-annotated]
        self.state = self

    def job(self, _job_id: bytes) -> object | None:
        return object() if self.job_at is not None and self.height >= self.job_at else None

    def add_block_listener(self, listener: object) -> None:
        self.listeners.append(listener)

    def now_ms(self) -> int:
        return 1_000_000

    def commit(self, time_ms: int) -> None:
        from client.node.handle import CommittedBlock

        self.height += 1
        for listener in self.listeners:
            listener(CommittedBlock(None, b"", time_ms))  # type: ignore[arg-type]


def test_join_waits_for_the_job_while_a_fresh_node_syncs() -> None:
    """[JOB-FED.1] A data owner's fresh node starts at height 0: ``federated join`` attaches
    the participant once the synced blocks bring the job (not refused at start, which
    stopped every freshly started owner node), and gives up with a clear error once the
    node has caught up without it."""
    from client.federated.cli import CATCH_UP_MS, when_job_known

    attached: list[int] = []
    errors: list[str] = []
    node = _SyncingNode(job_at=3)
    when_job_known(node, b"\x01" * 32, lambda: attached.append(node.height),  # type: ignore[arg-type]
                   errors.append)
    assert attached == [] and errors == []
    for _ in range(5):
        node.commit(time_ms=1)  # old blocks: still syncing
    assert attached == [3] and errors == []

    ready = _SyncingNode(job_at=0)
    when_job_known(ready, b"\x01" * 32, lambda: attached.append(-1), errors.append)  # type: ignore[arg-type]
    assert attached == [3, -1] and ready.listeners == []

    missing = _SyncingNode(job_at=None)
    when_job_known(missing, b"\x02" * 32, lambda: attached.append(-2), errors.append)  # type: ignore[arg-type]
    missing.commit(time_ms=1)
    assert errors == []
    missing.commit(time_ms=missing.now_ms() - CATCH_UP_MS // 2)
    missing.commit(time_ms=missing.now_ms())
    assert len(errors) == 1 and "02" * 32 in errors[0] and "caught up" in errors[0]
    assert attached == [3, -1]
