"""Nothing a job, a peer or a node chose reaches the terminal raw [TERM-INERT.1], [LOG-LINE.1].

Issue 13 §4: a job's name, description and search-space values reached the
user's terminal through ``job status`` (window title, clear screen, cursor
report request, BEL, backspaces), and a job's output started forged lines in
the node's log. Here:

- ``inert`` itself, on every class of control sequence;
- a hostile job posted on a real node (description, image ref, entry points,
  search-space names and values) and every command that shows it;
- every command of the CLI that talks to a node, walked against a hostile node
  whose every string (every field of every documented response, and every error
  message) is a control sequence: no raw control byte on stdout or stderr; a new
  command must be added to the walk or to the list of local-only commands;
- ``--json`` output is still one JSON document that decodes to the hostile text;
- the node's human log: one record per line whatever the message, its arguments
  or its traceback carry; JSON log lines are ASCII.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from chain.crypto import PrivateKey, address_to_text
from chain.jobspec import ParamSpec
from chain.train.bodies import PostJob
from client.api.http_client import ApiClient
from client.api.openapi import openapi_document
from client.cli.inert import inert
from client.cli.main import cli
from client.observe.logs import JsonFormatter, human_formatter
from tests.client.api.test_api_support import ApiThread, future_spec
from tests.client.cli.test_cli_chain import key_file
from tests.client.cli.test_cli_job import job_dir, saved_image, send

FORGED = "\n2031-01-01 12:00:00,000 node0 INFO    client.worker: verdict on OUR claim: valid"
ATTACKS = {
    "osc_window_title": "\x1b]0;pwned\x07",
    "osc_8_hyperlink": "\x1b]8;;http://203.0.113.9/\x1b\\click\x1b]8;;\x1b\\",
    "csi_clear_screen": "\x1b[2J\x1b[H",
    "csi_cursor_report": "\x1b[6n",
    "csi_colour": "\x1b[31;1mred\x1b[0m",
    "dcs_request": "\x1bP$q\"p\x1b\\",
    "bell": "\x07\x07",
    "backspaces": "safe\x08\x08\x08\x08evil",
    "carriage_return": "ok\rFAKE",
    "forged_log_line": FORGED,
    "nul_del_tab_vt_ff": "\x00\x7f\t\x0b\x0c",
    "c1_csi_nel": "\x9b2J\x85\x9d0;t\x9c",
    "bidi_override": "\u202eexe.txt\u202c",
    "bidi_isolates": "\u2066\u2067\u2068\u2069\u061c\u200e\u200f",
    "zero_width_bom": "a\u200bb\u200dc\ufeffd\u00ad",
    "line_separators": "x\u2028y\u2029z",
}
HOSTILE = "".join(ATTACKS.values())
LONE_SURROGATE = "\ud800"


def raw_controls(text: str) -> list[str]:
    """Characters that act on a terminal, defined here independently of ``inert``."""
    bad = []
    for ch in text:
        code = ord(ch)
        if (code < 0x20 and ch != "\n") or 0x7F <= code <= 0x9F \
                or 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069 \
                or code in (0x061C, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0xFEFF, 0x00AD,
                            0x2028, 0x2029) \
                or 0xD800 <= code <= 0xDFFF:
            bad.append(repr(ch))
    return bad


def assert_inert(result: Result, what: object) -> None:
    for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        assert not raw_controls(text), (what, stream, raw_controls(text)[:10], text[:400])
        for line in text.splitlines():  # no forged record, even as a whole line
            assert not line.startswith("2031-01-01"), (what, stream, line)


# --- inert itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_term_inert_1_every_attack_is_escaped_visibly(name: str) -> None:
    attack = ATTACKS[name]
    shown = inert(f"job {attack} end")
    assert not raw_controls(shown) and "\n" not in shown, (name, shown)
    assert shown.startswith("job ") and shown.endswith(" end")
    assert "\\" in shown, "escaped visibly, not silently dropped"


def test_term_inert_1_printable_text_passes_unchanged() -> None:
    for text in ("digits MLP, lr ∈ [1e-4, 0.1]", "Ünïcödé ✓ 模型 🚀", "C:\\path\\x1b", "a  b"):
        assert inert(text) == text
    assert inert("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert inert("\x1b[2J") == "\\x1b[2J"
    assert inert("\u202e") == "\\u202e"
    assert inert(LONE_SURROGATE) == "\\ud800"
    assert inert(42) == "42"


# --- a hostile job on a real node ---------------------------------------------------------------


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with ApiThread(tmp_path, validators=2) as api:
        yield api


def run(args: list[str], code: int | None = 0) -> Result:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    if code is not None:
        assert result.exit_code == code, (args, result.exit_code, result.output[-600:])
    return result


def test_term_inert_1_a_hostile_job_on_a_real_node_is_shown_inert(chain: ApiThread,
                                                                   tmp_path: Path) -> None:
    client = ApiClient(chain.url)
    values = tuple(a[:64] for a in ATTACKS.values())
    spec = dataclasses.replace(
        future_spec(int(client.status()["time_ms"])),
        description=HOSTILE[:1024], image_ref=HOSTILE[:256],
        entry_points=(("evaluate", (ATTACKS["csi_clear_screen"], FORGED)),
                      ("train", (ATTACKS["osc_window_title"],))),
        search_space=(ParamSpec(ATTACKS["bidi_override"], "choice", values),
                      ParamSpec(ATTACKS["forged_log_line"][:64], "uniform", (0.0, 1.0))))
    job_id = send(client, chain.keys["submitter"], PostJob(spec)).hex()
    info = client.tx(job_id)
    node = ["--node", chain.url]
    for args in (["job", "status", job_id], ["job", "leaderboard", job_id],
                 ["chain", "tx", job_id], ["chain", "block", str(info["height"])],
                 ["chain", "blocks"], ["chain", "status"], ["chain", "supply"]):
        result = run([*args, *node])
        assert_inert(result, args)
    status = run(["job", "status", job_id, *node]).stdout
    assert "\\x1b]0;pwned\\x07" in status and "\\u202eexe.txt" in status
    tx = run(["chain", "tx", job_id, *node]).stdout
    assert "\\x1b[2J" in tx and "verdict on OUR claim" in tx
    watched = run(["job", "watch", job_id, "--timeout", "1s", *node], code=1)
    assert_inert(watched, "job watch")
    # --json stays one JSON document carrying the text exactly (escaped by the encoder).
    doc = run(["job", "status", job_id, "--json", *node]).stdout
    assert not raw_controls(doc) and doc.isascii()
    assert json.loads(doc)["spec"]["description"] == HOSTILE[:1024]
    assert json.loads(run(["chain", "tx", job_id, "--json", *node]).stdout)["tx"]["body"][
        "spec"]["search_space"][0]["values"] == list(values)


# --- every command against a hostile node ------------------------------------------------------


def _hostile_instance(schema: dict[str, Any], doc: dict[str, Any], text: str) -> Any:
    """A value of ``schema`` whose every string is ``text`` (patterns and enums ignored)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _hostile_instance(doc["components"]["schemas"][name], doc, text)
    if "oneOf" in schema:
        return _hostile_instance(schema["oneOf"][0], doc, text)
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        out = {k: _hostile_instance(v, doc, text) for k, v in schema.get("properties", {}).items()}
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            out[text] = _hostile_instance(extra, doc, text)
        return out
    if kind == "array":
        return [_hostile_instance(schema["items"], doc, text)]
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 0.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text  # strings, enums: the attack


class HostileNode:
    """An HTTP server answering every documented route with hostile strings (or errors)."""

    def __init__(self, text: str) -> None:
        self.doc = openapi_document()
        self.text = text
        self.errors = False
        self.chain_id: str | None = None
        """A valid chain id in /status instead of the attack: signing commands get further."""
        routes = []
        for path, ops in self.doc["paths"].items():
            pattern = re.compile("^/api/v1" + re.sub(r"{\w+}", "[^/]+", path) + "$")
            for method, op in ops.items():
                ok = min(op["responses"], key=lambda c: (not c.startswith("2"), c))
                routes.append((method.upper(), pattern, op["responses"][ok], int(ok)))
        node = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?")[0]
                status, body, ctype = 404, {"error": {"code": node.text, "message": node.text}}, \
                    "application/json"
                for m, pattern, response, code in routes:
                    if m == method and pattern.match(path):
                        if node.errors:
                            status = 400
                        elif "application/json" in response.get("content", {}):
                            schema = response["content"]["application/json"]["schema"]
                            status, body = code, _hostile_instance(schema, node.doc, node.text)
                            if path.endswith("/status") and node.chain_id:
                                body["chain_id"] = node.chain_id
                        else:
                            status, body, ctype = code, None, "application/octet-stream"
                        break
                data = json.dumps(body).encode() if body is not None else node.text.encode(
                    "utf-8", "surrogatepass")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HostileNode:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


LOCAL_ONLY = {
    ("keys", "new"), ("keys", "show"), ("keys", "import"), ("keys", "export"),
    ("network", "create"), ("node", "start"), ("node", "token"), ("devnet", "up"),
    ("devnet", "down"), ("devnet", "status"), ("job", "init"), ("job", "build"),
    ("sandbox", "base-image"), ("sandbox", "cleanup"), ("federated", "join"),
    ("model", "check"),
}
FROM_A_URL = {("node", "init")}
"""Commands that read a node by another option than ``--node``: walked by their own test."""
"""Commands that never read a node: their text comes from the user's own files (``node
start`` and ``federated join`` print their node's log, checked below)."""


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


def node_commands(tmp_path: Path) -> dict[tuple[str, ...], list[str]]:
    """Arguments for every command that talks to a node."""
    key = key_file(tmp_path, PrivateKey.from_seed(b"walker"), "walker")
    job, some = "ab" * 32, address_to_text(PrivateKey.from_seed(b"someone").address)
    pubkey = PrivateKey.from_seed(b"v").public_key.hex()
    tar, _ = saved_image(tmp_path)
    rows = tmp_path / "rows.csv"
    rows.write_text(",".join(["0"] * 64) + "\n")
    return {
        ("balance",): [some], ("transfer",): [some, "5", *key],
        ("chain", "status"): [], ("chain", "blocks"): [], ("chain", "block"): ["1"],
        ("chain", "tx"): [job], ("chain", "supply"): [],
        ("chain", "genesis"): ["-o", str(tmp_path / "genesis.json")],
        ("member", "admit"): [some, *key], ("member", "list"): [],
        ("validator", "add"): [pubkey, *key], ("validator", "remove"): [some, *key],
        ("validator", "list"): [],
        ("governance", "approve"): [job, *key], ("governance", "list"): [],
        ("governance", "upgrade"): ["v2-memo", "--version", "2", "--height", "99", *key],
        ("governance", "cancel-upgrade"): ["v2-memo", *key], ("node", "status"): [],
        ("job", "status"): [job], ("job", "leaderboard"): [job], ("job", "logs"): [job],
        ("job", "list"): ["--mine", *key[:2]],
        ("verifier", "join"): [*key], ("verifier", "leave"): [*key], ("verifier", "list"): [],
        ("job", "watch"): [job, "--timeout", "1s"],
        ("job", "fetch-model"): [job, "-o", str(tmp_path / "model.bin")],
        ("job", "submit"): [str(job_dir(tmp_path)), "--image-tar", str(tar), *key],
        ("job", "holdout", "publish"): [job, "--job-dir", str(tmp_path), *key],
        ("job", "holdout", "reveal"): [job, "--job-dir", str(tmp_path), *key],
        ("model", "list"): [], ("model", "show"): [job], ("model", "request"): [job],
        ("model", "deploy"): [job, "--features", "64", "--labels", ",".join("0123456789"), *key],
        ("predict",): [job, "--input", str(rows), "--timeout", "1s", *key],
        ("federated", "show"): [job],
        ("federated", "part"): [job, "hidden", "--job-dir", str(tmp_path), *key],
    }


@pytest.mark.parametrize("text", [HOSTILE, HOSTILE + LONE_SURROGATE],
                         ids=["controls", "with-lone-surrogate"])
def test_term_inert_1_every_command_against_a_hostile_node_prints_nothing_raw(
        tmp_path: Path, text: str) -> None:
    table = node_commands(tmp_path)
    every = set(commands(cli.load_all()))
    unknown = every - set(table) - LOCAL_ONLY - FROM_A_URL
    assert not unknown, f"add these commands to the walk (or LOCAL_ONLY): {sorted(unknown)}"
    assert every >= LOCAL_ONLY and not LOCAL_ONLY & set(table)
    shown = set()
    with HostileNode(text) as node:
        for errors, chain_id in ((False, None), (False, "lc-hostile"), (True, None)):
            node.errors, node.chain_id = errors, chain_id
            for path, args in sorted(table.items()):
                for as_json in ((), ("--json",)):
                    result = run([*path, *args, *as_json, "--node", node.url], code=None)
                    assert result.exit_code in (0, 1), (path, errors, result.output[-800:])
                    assert_inert(result, (path, errors, as_json))
                    if "\\x1b]0;pwned" in result.stdout + result.stderr:
                        shown.add(path)
                    if as_json and result.exit_code == 0:
                        json.loads(result.stdout.splitlines()[-1])  # still JSON
    assert shown == set(table), f"the attack never reached the output of {set(table) - shown}"


# --- the node's log ----------------------------------------------------------------------------


def _records(formatter: logging.Formatter, emit: Any) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("lc.test.terminal")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        emit(logger)
    finally:
        logger.handlers[:] = []
    return stream.getvalue()


def _hostile_records(logger: logging.Logger) -> None:
    logger.info("job %s finished: %s", HOSTILE, FORGED)
    logger.warning(FORGED)
    try:
        raise ValueError(f"bad output {FORGED}")
    except ValueError:
        logger.exception("evaluate failed for %r", HOSTILE)
    logger.info("stack", stack_info=True)


def test_log_line_1_one_record_per_line_whatever_it_carries() -> None:
    text = _records(human_formatter("node0"), _hostile_records)
    lines = text.splitlines()
    assert len(lines) == 4, lines
    assert all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} node0 ", line) for line in lines)
    assert not raw_controls(text.replace("\n", ""))
    assert "verdict on OUR claim" in lines[0] and "\\n2031-01-01" in lines[0]
    assert "Traceback" in lines[2] and "ValueError" in lines[2]


def test_log_line_1_json_lines_are_ascii_and_carry_the_text_exactly() -> None:
    text = _records(JsonFormatter(), _hostile_records)
    lines = text.splitlines()
    assert len(lines) == 4 and text.isascii() and not raw_controls(text.replace("\n", ""))
    first = json.loads(lines[0])
    assert first["msg"] == f"job {HOSTILE} finished: {FORGED}"
    assert "ValueError" in json.loads(lines[2])["exc"]


@pytest.mark.parametrize("text", [HOSTILE, HOSTILE + LONE_SURROGATE],
                         ids=["controls", "with-lone-surrogate"])
def test_term_inert_1_node_init_from_a_hostile_genesis_url_prints_nothing_raw(
        tmp_path: Path, text: str) -> None:
    """[TERM-INERT.1] ``node init --genesis URL`` reads what a node serves: whatever the
    hostile node answers (hostile strings, errors), the refusal is inert and nothing is
    written."""
    with HostileNode(text) as node:
        for errors in (False, True):
            node.errors = errors
            for as_json in ((), ("--json",)):
                target = tmp_path / f"n-{errors}-{len(as_json)}"
                result = run(["node", "init", str(target), "--genesis", node.url,
                              "--genesis-hash", "ab" * 32, "--peer", "127.0.0.1:9",
                              *as_json], code=None)
                assert result.exit_code == 1, result.output[-800:]
                assert_inert(result, ("node init", errors, as_json))
                assert not target.exists()
