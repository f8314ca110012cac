"""MkDocs hooks for the documentation site (`make docs`, mkdocs.yml's `hooks:`).

One source of truth per page: the site renders README.md as its home page and
protocol_spec/*.md as they are in the repository (never copied by hand), and generates
the CLI reference (mkdocs-click over the `learningchain` entry point named in
pyproject.toml) and the HTTP API reference (the OpenAPI document a node serves, built
offline by calling the same function). Relative links are written for the repository
(they work on a forge and in an editor) and rewritten here to the site's pages; a link
to a repository file the site does not render (a script, a test) becomes its path in
code, once the file is checked to exist. A link to nothing is left alone, so that
`mkdocs build --strict` fails on it.
"""

from __future__ import annotations

import json
import posixpath
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[1]
SPEC = "protocol_spec"
RENDERED = {"README.md": "index.md", f"{SPEC}/README.md": "spec/index.md",
            f"{SPEC}/vectors/README.md": "spec/vectors.md"}
"""Repository markdown rendered under another name (a folder's README is its index)."""
LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)


def _spec_pages() -> dict[str, str]:
    pages = {f"{SPEC}/{p.name}": f"spec/{p.name}" for p in sorted((ROOT / SPEC).glob("*.md"))}
    return pages | RENDERED


def _folders() -> dict[str, str]:
    """A link to a folder whose README the site renders goes to that page."""
    return {posixpath.dirname(src): uri for src, uri in RENDERED.items() if "/" in src}


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """The tree being built is the one imported (the CLI and the OpenAPI document)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return config


def cli_entry_point() -> tuple[str, str]:
    """(module, command) of the `learningchain` script, as pyproject.toml declares it."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, command = scripts["learningchain"].split(":")
    return module, command


def cli_group() -> tuple[str, str]:
    """(module, name) of the click group the entry point runs: the script itself when it
    is a click command, else the one top-level click group its module defines."""
    import importlib

    import click
    module, command = cli_entry_point()
    loaded = importlib.import_module(module)
    if isinstance(getattr(loaded, command), click.Command):
        return module, command
    [group] = [name for name, obj in vars(loaded).items()
               if isinstance(obj, click.Group) and obj.callback is not None
               and obj.callback.__module__ == module]
    return module, group


def cli_page() -> str:
    module, command = cli_group()
    return (
        "# CLI reference\n\n"
        "Every command of `learningchain`, generated from the click commands themselves "
        f"(`{module}:{command}`, the entry point in `pyproject.toml`). Every command also "
        "answers `--help`; most take `--json`. Exit codes: 0 ok, 1 user error, 2 usage.\n\n"
        f"::: mkdocs-click\n    :module: {module}\n    :command: {command}\n"
        "    :prog_name: learningchain\n    :depth: 1\n    :style: plain\n"
        "    :list_subcommands: true\n")


def openapi() -> dict[str, Any]:
    from client.api.openapi import openapi_document
    return openapi_document()


def _schema_text(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[`{name}`](#schema-{name.lower()})"
    if "oneOf" in schema:
        return " or ".join(_schema_text(s) for s in schema["oneOf"])
    if schema.get("type") == "array":
        return f"array of {_schema_text(schema.get('items', {}))}"
    return f"`{schema.get('type', 'any')}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def api_page(doc: dict[str, Any]) -> str:
    """The OpenAPI document as one page: every operation, then every schema."""
    base = doc["servers"][0]["url"]
    out = [f"# HTTP API reference\n\n{doc['info']['description']}\n",
           f"Generated from the OpenAPI {doc['openapi']} document every node serves at "
           f"`{base}/openapi.json` (the same document: [openapi.json](openapi.json)). "
           "The rules behind it: [the API spec](../spec/api.md).\n"]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            by_tag.setdefault((op.get("tags") or ["other"])[0], []).append((path, method, op))
    for tag in sorted(by_tag):
        out.append(f"## {tag}\n")
        for path, method, op in by_tag[tag]:
            out.append(f"### `{method.upper()} {base}{path}`\n\n{_cell(op.get('summary', ''))}\n")
            if op.get("description"):
                out.append(f"{op['description']}\n")
            if op.get("security"):
                out.append("Needs the node's token (`Authorization: Bearer`) once it has one.\n")
            params = op.get("parameters", [])
            if params:
                out.append("| parameter | in | required | schema | description |\n"
                           "|---|---|---|---|---|")
                out += [f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} | "
                        f"{_schema_text(p.get('schema', {}))} | {_cell(p.get('description', ''))} |"
                        for p in params]
                out.append("")
            body = op.get("requestBody", {}).get("content", {})
            for media, spec in body.items():
                out.append(f"Request body (`{media}`): {_schema_text(spec.get('schema', {}))}\n")
            out.append("| status | response |\n|---|---|")
            for status, resp in op.get("responses", {}).items():
                content: dict[str, Any] = resp.get("content", {})
                schema = next(iter(content.values())).get("schema") if content else None
                shown = f" {_schema_text(schema)}" if schema else ""
                out.append(f"| {status} | {_cell(resp.get('description', ''))}{shown} |")
            out.append("")
    out.append("## Schemas\n")
    for name, schema in doc["components"]["schemas"].items():
        out.append(f"### {name} {{ #schema-{name.lower()} }}\n")
        if schema.get("description"):
            out.append(f"{schema['description']}\n")
        out.append(f"```json\n{json.dumps(schema, indent=2, ensure_ascii=False)}\n```\n")
    return "\n".join(out)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for source, uri in _spec_pages().items():
        files.append(File.generated(config, uri, abs_src_path=str(ROOT / source)))
    doc = openapi()
    files.append(File.generated(config, "reference/cli.md", content=cli_page()))
    files.append(File.generated(config, "reference/api.md", content=api_page(doc)))
    files.append(File.generated(config, "reference/openapi.json",
                                content=json.dumps(doc, indent=2, ensure_ascii=False)))
    return files


def _site_map(files: Files, config: MkDocsConfig) -> dict[str, str]:
    """Repository path -> the site's src_uri, for every page and asset the site holds."""
    docs = Path(config.docs_dir).resolve().relative_to(ROOT).as_posix()
    found = {f"{docs}/{f.src_uri}": f.src_uri for f in files if f.generated_by is None}
    return found | _spec_pages() | _folders()


def _repo_path(page: Page) -> str:
    for source, uri in _spec_pages().items():
        if uri == page.file.src_uri:
            return source
    assert page.file.abs_src_path is not None, page.file.src_uri
    return Path(page.file.abs_src_path).resolve().relative_to(ROOT).as_posix()


def rewrite_links(markdown: str, repo_path: str, site_uri: str, site: dict[str, str]) -> str:
    """Links written for the repository, made to point at the site (outside code blocks)."""
    here = posixpath.dirname(repo_path)

    def one(match: re.Match[str]) -> str:
        bang, text, target = match.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        repo = posixpath.normpath(posixpath.join(here, path)).rstrip("/")
        if repo in site:
            rel = posixpath.relpath(site[repo], posixpath.dirname(site_uri) or ".")
            return f"{bang}[{text}]({rel}{'#' + anchor if anchor else ''})"
        if not bang and (ROOT / repo).exists() and not repo.startswith(".."):
            return text if text.strip("`") == repo else f"{text} (`{repo}`)"
        return match.group(0)  # a broken link stays broken: the strict build reports it

    parts = FENCE.split(markdown)
    # FENCE.split keeps the delimiters: [text, fence, code..., fence, text, ...]; rewrite
    # only what lies outside an open fence.
    out, inside = [], False
    for part in parts:
        if part in ("```", "~~~"):
            inside = not inside
            out.append(part)
        else:
            out.append(part if inside else LINK.sub(one, part))
    return "".join(out)


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.abs_src_path is None:  # generated from the code (the references)
        return markdown
    return rewrite_links(markdown, _repo_path(page), page.file.src_uri, _site_map(files, config))
