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
