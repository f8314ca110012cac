"""Byte code for the Python files of a host-packages layer, made when it is built [JOB-IMAGE.16].

A sandbox's root is read-only and its Python runs with ``PYTHONDONTWRITEBYTECODE``, so a
module without byte code in the image is compiled from source at *every* import, in every
container: in a container of the base image, ``import opacus`` (with the SciPy it brings)
took 6.0-6.9 s under gVisor and 3.0-4.0 s under runc without byte code, 4.2-5.2 s and
2.4-2.9 s with it; ``import onnx`` 0.84-0.97 against 0.60-0.68 s under gVisor.

Each file's byte code goes where the image's interpreter looks for it
(``__pycache__/<name>.cpython-311.pyc`` beside the source) as an *unchecked hash-based*
``.pyc`` (PEP 552): the interpreter does not read the source to check it, and the bytes do
not depend on file times, which the copy does not keep. Nothing can change the source
afterwards: the image is immutable and mounted read-only. The code is the host's own when
the host file has a ``.pyc`` that matches it (time and size in its header; only the header
is rewritten: compiling SciPy and Opacus's 1,108 files took 8.2-8.7 s of CPU here, at every
build of such a job), else compiled by the host's CPython 3.11, which compiles as the
image's does (same magic number). Tracebacks name the file's path in the image: the
interpreter sets a loaded code object's file name to its source's path. A file that does
not compile (a Python 2 fixture some distributions ship) gets none and imports as before.
"""

from __future__ import annotations

import importlib.util
import py_compile
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

IMAGE_CACHE_TAG = "cpython-311"
"""The image interpreter's ``sys.implementation.cache_tag`` (Debian bookworm's 3.11)."""
UNCHECKED_HASH_FLAGS = 0b01
"""PEP 552's flags word: hash-based (bit 0), not checked against the source (bit 1 clear)."""
BYTECODE_FORMAT = f"{IMAGE_CACHE_TAG} unchecked-hash optimize-0"
"""What a layer's byte code is; part of the predict image's tag
(``sandbox.host_packages.files_digest``), so a layer built before byte code was compiled,
or in another format, is not taken for this one."""


@dataclass(frozen=True, slots=True)
class Compiled:
    """How many ``.py`` files of a layer got byte code (``reused`` of them from the host's,
    the rest compiled), and how many did not compile."""

    compiled: int
    skipped: int
    reused: int = 0


def bytecode_path(source: Path) -> Path:
    """Where the image's interpreter looks for ``source``'s byte code."""
    return source.parent / "__pycache__" / f"{source.stem}.{IMAGE_CACHE_TAG}.pyc"


def compile_layer(site: Path, image_site: str,
                  hosts: Mapping[str, Path] | None = None) -> Compiled:
    """Give every ``.py`` under ``site`` (the layer's copy of ``image_site``) its byte code,
    in place: from the host's byte code of the file it was copied from (``hosts``: the
    path below ``site`` to the host file) when that matches, else compiled.

    Writes nothing when this interpreter is not the image's (its byte code would not load
    there); every caller has already refused such a host
    (``sandbox.host_packages.check_host_python``)."""
    sources = sorted(p for p in site.rglob("*.py") if "__pycache__" not in p.parts)
    if sys.implementation.cache_tag != IMAGE_CACHE_TAG:
        return Compiled(0, len(sources))
    compiled = skipped = reused = 0
    for source in sources:
        rel = source.relative_to(site).as_posix()
        target = bytecode_path(source)
        host = (hosts or {}).get(rel)
        if host is not None and _reuse_host_bytecode(host, source, target):
            reused += 1
            compiled += 1
            continue
        try:
            py_compile.compile(str(source), cfile=str(target),
                               dfile=f"{image_site}/{rel}", doraise=True, optimize=0,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        except py_compile.PyCompileError:
            skipped += 1
        else:
            compiled += 1
    return Compiled(compiled, skipped, reused)


def _reuse_host_bytecode(host: Path, copy: Path, target: Path) -> bool:
    """Write ``target`` from the host's timestamp ``.pyc`` of ``host`` when its header names
    this interpreter and the host file's time and size (the code is then ``host``'s, whose
    bytes ``copy`` holds); False when there is none or it does not match."""
    try:
        cached = Path(importlib.util.cache_from_source(str(host)))
        data = cached.read_bytes()
        stat = host.stat()
    except (OSError, NotImplementedError, ValueError):
        return False
    if len(data) < 16 or data[:4] != importlib.util.MAGIC_NUMBER:
        return False
    flags, mtime, size = struct.unpack("<III", data[4:16])
    if flags != 0 or mtime != int(stat.st_mtime) & 0xFFFFFFFF or size != stat.st_size & 0xFFFFFFFF:
        return False
    source = copy.read_bytes()
    if len(source) != stat.st_size:
        return False
    header = (importlib.util.MAGIC_NUMBER + struct.pack("<I", UNCHECKED_HASH_FLAGS)
              + importlib.util.source_hash(source))
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(header + data[16:])
    return True
