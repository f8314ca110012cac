"""The documentation site builds offline in strict mode, with no warning (issue 32).

`make docs` runs the same build. Strict mode with mkdocs.yml's `validation` levels turns
a broken link, a link to a missing anchor, a page missing from the nav and a nav entry
to a missing page into warnings, and any warning into a failed build: the second test
shows the build failing on each of them. The site renders what the repository holds
(README.md as home, protocol_spec/ as it is) and what the code declares (the CLI
reference from the click group, the HTTP API from the OpenAPI document the node
serves), so the third test checks that each of those reaches the site whole.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import yaml

from client.api.openapi import openapi_document
from scripts.docs_hooks import cli_group, rewrite_links
from tests.framework.wait import scaled

REPO = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = scaled(300)


def mkdocs_build(site: Path, config: Path = REPO / "mkdocs.yml",
                 ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_")}
    env["NO_MKDOCS_2_WARNING"] = "1"  # Material's notice about its successor, not a build issue
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(config), "--site-dir", str(site)], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=BUILD_TIMEOUT_S, check=False)


def test_docs_site_builds_strict_with_no_warning(tmp_path: Path) -> None:
    done = mkdocs_build(tmp_path / "site")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert not re.search(r"WARNING|ERROR", output), output
    assert (tmp_path / "site" / "index.html").is_file()


def test_docs_site_fails_on_a_broken_link_anchor_or_page(tmp_path: Path) -> None:
    """A page with a link to nothing, a link to a missing anchor, a page left out of the
    nav and a nav entry to a missing page: each is reported and the build aborts."""
    hook = tmp_path / "broken_hook.py"
    hook.write_text(
        "from mkdocs.structure.files import File\n\n"
        "def on_files(files, config):\n"
        "    files.append(File.generated(config, 'broken.md', content="
        "'# Broken\\n\\n[a](no-such-page.md) [b](index.md#no-such-anchor)\\n'))\n"
        "    return files\n")
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    config = tmp_path / "mkdocs.yml"
    config.write_text(yaml.safe_dump({
        "INHERIT": str(REPO / "mkdocs.yml"), "docs_dir": str(REPO / "docs"),
        "hooks": [str(REPO / "scripts" / "docs_hooks.py"), str(hook)],
        "nav": [*nav, {"Missing": "no-such-nav-page.md"}]}))
    done = mkdocs_build(tmp_path / "site", config)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Aborted with" in output and "in strict mode" in output, output
    assert "contains a link 'no-such-page.md', but the target is not found" in output, output
    assert "does not contain an anchor '#no-such-anchor'" in output, output
    assert "'broken.md'" in output and "not included in the \"nav\"" in output, output
    assert "'no-such-nav-page.md'" in output and "not found" in output, output


def test_docs_site_renders_the_spec_the_cli_and_the_api_whole(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = mkdocs_build(site)
    assert done.returncode == 0, done.stdout + done.stderr
    # The spec, every chapter, as the repository holds it (its rule ids all there).
    for chapter in sorted((REPO / "protocol_spec").glob("*.md")):
        page = site / "spec" / ("index.html" if chapter.name == "README.md"
                                else chapter.with_suffix(".html").name)
        text = html.unescape(page.read_text())
        rules = set(re.findall(r"\[([A-Z][A-Z0-9-]+\.\d+)\]", chapter.read_text()))
        assert rules <= set(re.findall(r"\[([A-Z][A-Z0-9-]+\.\d+)\]", text)), chapter.name
    # The CLI reference: every command and subcommand of the group, with its options.
    module, name = cli_group()
    group = getattr(__import__(module, fromlist=[name]), name)
    cli_html = (site / "reference" / "cli.html").read_text()

    def walk(command: click.Command, path: list[str]) -> None:
        assert f'id="{"-".join(path)}"' in cli_html, " ".join(path)
        for option in (p for p in command.params if isinstance(p, click.Option)):
            assert html.escape(option.opts[-1]) in cli_html, (path, option.opts)
        for sub_name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, sub_name])

    walk(group, ["learningchain"])
    # The HTTP API: the node's document, every operation on the page.
    doc = openapi_document()
    assert json.loads((site / "reference" / "openapi.json").read_text()) == doc
    api_html = html.unescape((site / "reference" / "api.html").read_text())
    prefix = doc["servers"][0]["url"]
    for path, ops in doc["paths"].items():
        for method in ops:
            assert f"{method.upper()} {prefix}{path}" in api_html, (method, path)
    for schema in doc["components"]["schemas"]:
        assert f'id="schema-{schema.lower()}"' in api_html, schema


def test_repository_links_are_rewritten_for_the_site_and_broken_ones_kept() -> None:
    """Pages link as the repository reads (on a forge, in an editor); the site maps those
    links to its own pages, names a repository file it does not render by its path, and
    leaves a link to nothing as it is, for the strict build to report."""
    site = {"docs/guides/job-author.md": "guides/job-author.md",
            "protocol_spec/ledger.md": "spec/ledger.md"}
    page = ("[spec](../../protocol_spec/ledger.md#5b-x) [a](job-author.md) "
            "[bench](../../bench/incentives.py) [gone](../../no/such.md) "
            "[web](https://example.org/x.md)\n```sh\n[spec](../../protocol_spec/ledger.md)\n```\n")
    out = rewrite_links(page, "docs/guides/validator.md", "guides/validator.md", site)
    assert "[spec](../spec/ledger.md#5b-x)" in out
    assert "[a](job-author.md)" in out
    assert "bench (`bench/incentives.py`)" in out and "](../../bench" not in out
    assert "[gone](../../no/such.md)" in out
    assert "[web](https://example.org/x.md)" in out
    assert out.endswith("```sh\n[spec](../../protocol_spec/ledger.md)\n```\n")  # code kept
