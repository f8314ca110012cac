"""A host-packages layer's byte code, compiled when it is built [JOB-IMAGE.16].

Pure: a layer's ``site/`` folder in a temp dir, compiled as ``build_layer`` compiles it; the
image's interpreter loading it is tested against the real engine in
``tests/sandbox/test_job_imports_docker.py``.
"""

from __future__ import annotations

import importlib.util
import marshal
import py_compile
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import host_packages
from sandbox.host_packages import files_digest
from sandbox.layer_bytecode import bytecode_path, compile_layer

IMAGE_SITE = "/usr/local/lib/python3.11/dist-packages"


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "pkg" / "sub").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("VALUE = 41 + 1\n")
    (site / "pkg" / "sub" / "mod.py").write_text("def f():\n    raise RuntimeError('x')\n")
    (site / "pkg" / "py2_fixture.py").write_text("print 'python 2'\n")
    (site / "pkg" / "data.txt").write_text("not python\n")
    return site


def test_job_image_16_every_py_file_gets_unchecked_hash_byte_code_named_for_the_image(
        tmp_path: Path) -> None:
    """[JOB-IMAGE.16] Each compilable ``.py`` gets ``__pycache__/<name>.cpython-311.pyc``:
    flags 1 (hash-based, unchecked), the source's hash, its code's file name the image's
    path; a file that does not compile gets none and is counted; nothing else is written."""
    site = _site(tmp_path)
    result = compile_layer(site, IMAGE_SITE)
    assert (result.compiled, result.skipped) == (2, 1)
    for rel in ("pkg/__init__.py", "pkg/sub/mod.py"):
        source = site / rel
        pyc = bytecode_path(source)
        assert pyc == source.parent / "__pycache__" / f"{source.stem}.cpython-311.pyc"
        data = pyc.read_bytes()
        assert data[:4] == importlib.util.MAGIC_NUMBER
        assert struct.unpack("<I", data[4:8])[0] == 0b01, "hash-based, not checked on import"
        assert data[8:16] == importlib.util.source_hash(source.read_bytes())
        code = marshal.loads(data[16:])
        assert code.co_filename == f"{IMAGE_SITE}/{rel}"
    assert not bytecode_path(site / "pkg" / "py2_fixture.py").exists()
    written = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
    assert written == ["pkg/__init__.py", "pkg/__pycache__/__init__.cpython-311.pyc",
                       "pkg/data.txt", "pkg/py2_fixture.py", "pkg/sub/__pycache__/"
                       "mod.cpython-311.pyc", "pkg/sub/mod.py"]


def test_job_image_16_the_byte_code_runs_as_the_source_would(tmp_path: Path) -> None:
    """[JOB-IMAGE.16] The compiled module, loaded from its ``.pyc`` alone (the source
    removed), computes what the source says."""
    site = _site(tmp_path)
    compile_layer(site, IMAGE_SITE)
    pyc = bytecode_path(site / "pkg" / "__init__.py")
    (site / "pkg" / "__init__.py").unlink()
    namespace: dict[str, object] = {}
    exec(marshal.loads(pyc.read_bytes()[16:]), namespace)
    assert namespace["VALUE"] == 42


def test_job_image_16_the_predict_image_tag_covers_the_byte_code_format(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[JOB-IMAGE.16] The same files under another byte-code format give another tag, so a
    predict image built before the byte code was compiled is not reused."""
    source = tmp_path / "m.py"
    source.write_text("x = 1\n")
    files = [("m.py", source)]
    now = files_digest("sha256:base", files)
    assert files_digest("sha256:base", files) == now
    monkeypatch.setattr(host_packages, "BYTECODE_FORMAT", "none")
    assert files_digest("sha256:base", files) != now


def _host_file(tmp_path: Path, text: str) -> Path:
    """A host distribution's file with the timestamp byte code pip leaves beside it."""
    host = tmp_path / "host" / "pkg" / "util.py"
    host.parent.mkdir(parents=True)
    host.write_text(text)
    py_compile.compile(str(host), doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    return host


def test_job_image_16_a_host_pyc_that_matches_is_reused_with_an_unchecked_hash_header(
        tmp_path: Path) -> None:
    """[JOB-IMAGE.16] The host's timestamp ``.pyc`` of the copied file gives the layer's
    byte code (its code, an unchecked-hash header of the copy's source); imported from the
    layer with the source present, the module runs, and a traceback names the layer's
    file, not the host's."""
    host = _host_file(tmp_path, "def boom():\n    raise ValueError('from util')\n")
    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    shutil.copyfile(host, site / "pkg" / "util.py")
    (site / "pkg" / "__init__.py").write_text("")
    result = compile_layer(site, IMAGE_SITE, {"pkg/util.py": host})
    assert (result.compiled, result.reused, result.skipped) == (2, 1, 0)
    data = bytecode_path(site / "pkg" / "util.py").read_bytes()
    host_pyc = Path(importlib.util.cache_from_source(str(host))).read_bytes()
    assert data[16:] == host_pyc[16:]
    assert struct.unpack("<I", data[4:8])[0] == 0b01
    assert data[8:16] == importlib.util.source_hash((site / "pkg" / "util.py").read_bytes())
    probe = ("import traceback, pkg.util\n"
             "try:\n    pkg.util.boom()\n"
             "except ValueError:\n    traceback.print_exc()\n")
    run = subprocess.run([sys.executable, "-B", "-v", "-c", probe], cwd=site,
                         capture_output=True, text=True, check=True)
    assert f"code object from '{bytecode_path(site / 'pkg' / 'util.py')}'" in run.stderr
    assert f'File "{site / "pkg" / "util.py"}", line 2, in boom' in run.stderr
    assert str(host) not in run.stderr


def test_job_image_16_a_stale_host_pyc_is_not_reused(tmp_path: Path) -> None:
    """[JOB-IMAGE.16] A host ``.pyc`` whose header does not match the host file (edited
    since) is not reused: the copy is compiled, and its byte code is the copy's code."""
    host = _host_file(tmp_path, "VALUE = 1\n")
    host.write_text("VALUE = 22\n")
    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    shutil.copyfile(host, site / "pkg" / "util.py")
    result = compile_layer(site, IMAGE_SITE, {"pkg/util.py": host})
    assert (result.compiled, result.reused) == (1, 0)
    namespace: dict[str, object] = {}
    exec(marshal.loads(bytecode_path(site / "pkg" / "util.py").read_bytes()[16:]), namespace)
    assert namespace["VALUE"] == 22
