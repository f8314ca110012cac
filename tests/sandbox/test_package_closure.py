"""What a job's ``[python] packages`` brings [JOB-IMAGE.12], and how ``job build`` runs the
job's imports in the built image [JOB-IMAGE.15] (its script, run here by the host's
Python), without Docker.

The closure is resolved against this host's real installed distributions (the suite's own
virtualenv, from requirements.lock); fake distributions are ``.dist-info`` folders in a
temporary folder put on ``sys.path``, which ``importlib.metadata`` reads like any other.
"""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from sandbox.errors import JobDirError
from sandbox.job_file import load_job_file
from sandbox.job_template import (
    IMPORT_SCRIPT,
    ImportCheck,
    _host_dists,
    import_targets,
    init_job,
    parse_import_check,
)
from sandbox.package_closure import (
    BASE_IMAGE_DISTRIBUTIONS,
    IMAGE_ENVIRONMENT,
    PackageClosureError,
    ResolvedDist,
    host_lookup,
    image_requirements,
    resolve_closure,
)

SKLEARN_ONNX = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime")
"""The four names a job author exporting a scikit-learn model to ONNX lists (issue 50)."""


def _fake_dist(root: Path, name: str, requires: tuple[str, ...] = (),
               extras: tuple[str, ...] = ()) -> None:
    """A distribution ``importlib.metadata`` finds below ``root`` (one module, a RECORD)."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0",
             *(f"Provides-Extra: {e}" for e in extras), *(f"Requires-Dist: {r}" for r in requires)]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    module = name.replace("-", "_") + ".py"
    (root / module).write_text("")
    (info / "RECORD").write_text(f"{module},,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")


def _names(dists: tuple[ResolvedDist, ...]) -> list[str]:
    return [str(canonicalize_name(d.name)) for d in dists]


def test_job_image_12_scikit_learn_brings_scipy_joblib_and_threadpoolctl() -> None:
    """[JOB-IMAGE.12] Naming scikit-learn copies what it requires on this host, each with the
    host's version and who required it; numpy is the base image's and is not copied."""
    closure = resolve_closure(["scikit-learn"])
    by_name = dict(zip(_names(closure.dists), closure.dists, strict=True))
    assert _names(closure.dists)[0] == "scikit-learn"
    assert by_name["scikit-learn"].required_by == ()
    for dep in ("scipy", "joblib", "threadpoolctl"):
        assert by_name[dep].required_by == ("scikit-learn",), by_name[dep]
        assert by_name[dep].version == md.version(dep)
    assert "numpy" not in by_name and "numpy" in closure.skipped
    assert {d.name for d in closure.added} == set(by_name) - {"scikit-learn"}


def test_job_image_12_the_sklearn_onnx_four_bring_protobuf_and_the_rest_in_a_fixed_order(
        ) -> None:
    """[JOB-IMAGE.12] The list that failed at ``import onnx`` in every worker (issue 50) now
    brings protobuf, ml_dtypes, flatbuffers...; named first in job.toml's order, then the
    rest by canonical name; the same names give the same closure; nothing of the base
    image (typing-extensions, numpy) is copied."""
    closure = resolve_closure(SKLEARN_ONNX)
    names = _names(closure.dists)
    assert names[:4] == list(SKLEARN_ONNX)
    assert names[4:] == sorted(names[4:])
    assert {"scipy", "protobuf", "ml-dtypes", "flatbuffers", "joblib"} <= set(names)
    protobuf = next(d for d in closure.dists if canonicalize_name(d.name) == "protobuf")
    assert protobuf.required_by == ("onnx", "onnxruntime")
    assert not set(names) & BASE_IMAGE_DISTRIBUTIONS
    assert {"numpy", "typing-extensions"} <= set(closure.skipped)
    assert resolve_closure(SKLEARN_ONNX) == closure
    assert len(names) == len(set(names))


def test_job_image_12_base_image_set_is_the_host_closure_of_torch_and_numpy() -> None:
    """[JOB-IMAGE.12] ``BASE_IMAGE_DISTRIBUTIONS`` is torch's and numpy's closure (markers for
    the image, no extras) as this host, which runs the base image's torch, has them."""
    assert md.version("torch").split("+")[0] == "2.13.0"  # sandbox.base_image.TORCH_REQUIREMENT
    closure = resolve_closure(["torch", "numpy"], base=frozenset())
    assert set(_names(closure.dists)) == BASE_IMAGE_DISTRIBUTIONS


def test_job_image_12_a_requirement_missing_on_the_host_is_refused_naming_it_and_who_needs_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[JOB-IMAGE.12] A distribution of the closure that the host lacks refuses the job: the
    error names it and the listed package whose requirements lead to it, with the chain;
    ``job build`` turns it into a ``JobDirError`` before any build."""
    _fake_dist(tmp_path, "lc-fake-top", ("lc-fake-mid>=0.5", "numpy"))
    _fake_dist(tmp_path, "lc-fake-mid", ("lc-fake-missing>=2",))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PackageClosureError) as caught:
        resolve_closure(["lc-fake-top"])
    e = caught.value
    assert e.missing == "lc-fake-missing"
    assert e.chain == ("lc-fake-top", "lc-fake-mid", "lc-fake-missing>=2")
    assert str(e).startswith("lc-fake-missing is not installed on the host, and lc-fake-top "
                             "needs it (lc-fake-top -> lc-fake-mid -> lc-fake-missing>=2)")
    with pytest.raises(JobDirError, match=r"\[python\] packages: lc-fake-missing is not "
                                          r"installed on the host, and lc-fake-top needs it"):
        _host_dists(("lc-fake-top",))
    with pytest.raises(JobDirError, match="lc-fake-gone is not installed on the host"):
        _host_dists(("scipy", "lc-fake-gone"))


def test_job_image_12_markers_are_the_images_and_extras_only_those_asked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[JOB-IMAGE.12] Markers are evaluated for the image's interpreter (3.11.2 on x86_64
    Linux), not the host's: a requirement for Windows, an old Python, or an extra nobody
    asked for is neither copied nor needed; one for exactly the image's Python is; an
    extra is followed when a requirement names it (``foo[gpu]``), and the base image's
    distributions are skipped even with extras."""
    _fake_dist(tmp_path, "lc-fake-app", (
        'lc-fake-win; sys_platform == "win32"',
        'lc-fake-old; python_version < "3.8"',
        'lc-fake-image-only; python_full_version == "3.11.2"',
        "lc-fake-lib",
        "torch[opt-einsum]; platform_machine == 'x86_64'",
    ))
    _fake_dist(tmp_path, "lc-fake-lib", ('lc-fake-gpu-helper; extra == "gpu"',), ("gpu",))
    _fake_dist(tmp_path, "lc-fake-image-only")
    _fake_dist(tmp_path, "lc-fake-wants-gpu", ("lc-fake-lib[gpu]",))
    monkeypatch.syspath_prepend(str(tmp_path))
    closure = resolve_closure(["lc-fake-app"])
    assert _names(closure.dists) == ["lc-fake-app", "lc-fake-image-only", "lc-fake-lib"]
    assert closure.skipped == ("torch",)
    with pytest.raises(PackageClosureError) as caught:
        resolve_closure(["lc-fake-app", "lc-fake-wants-gpu"])
    assert caught.value.missing == "lc-fake-gpu-helper"
    assert caught.value.chain == ("lc-fake-wants-gpu", "lc-fake-lib[gpu]",
                                  'lc-fake-gpu-helper; extra == "gpu"'), caught.value.chain
    app = host_lookup("lc-fake-app")
    assert app is not None
    host_like = {**IMAGE_ENVIRONMENT, "python_full_version": "3.11.7"}
    assert "lc-fake-image-only" not in {r.name for r in image_requirements(app, (), host_like)}


def test_job_image_12_a_version_the_specifier_refuses_is_copied_with_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[JOB-IMAGE.12] The host's installed version is copied even where the requiring
    specifier does not admit it (the host runs it so); the closure says so."""
    _fake_dist(tmp_path, "lc-fake-strict", ("lc-fake-dep>=2",))
    _fake_dist(tmp_path, "lc-fake-dep")
    monkeypatch.syspath_prepend(str(tmp_path))
    closure = resolve_closure(["lc-fake-strict"])
    assert _names(closure.dists) == ["lc-fake-strict", "lc-fake-dep"]
    assert closure.mismatches == ("lc-fake-strict requires lc-fake-dep>=2, the host has "
                                  "lc-fake-dep 1.0",)


def _run_script(*targets: str) -> ImportCheck:
    """``IMPORT_SCRIPT`` run by this host's Python, as the image's runs it (no Docker)."""
    proc = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT, *targets], capture_output=True,
                          text=True, timeout=120, cwd="/tmp", check=False)
    check = parse_import_check(proc.stdout, 0.0)
    assert check is not None, (proc.returncode, proc.stdout, proc.stderr)
    return check


def test_job_image_15_the_targets_are_the_entry_points_files_and_modules(tmp_path: Path) -> None:
    """[JOB-IMAGE.15] An entry point's absolute paths are read as files in the image, ``-m
    NAME`` as a module; other arguments are not."""
    job_dir = tmp_path / "job"
    init_job(job_dir, name="pytest-imports")
    assert import_targets(load_job_file(job_dir)) == ("file:/job/evaluate", "file:/job/train")
    toml = (job_dir / "job.toml").read_text().replace(
        'train = ["/job/train"]', 'train = ["python3", "/job//train.py", "--fast", "x/y"]'
    ).replace('evaluate = ["/job/evaluate"]', 'evaluate = ["python3", "-m", "pkg.main"]')
    (job_dir / "job.toml").write_text(toml)
    assert import_targets(load_job_file(job_dir)) == ("file:/job/train.py", "module:pkg.main")


def test_job_image_15_module_level_imports_run_as_the_entry_file_would_run_them(
        tmp_path: Path) -> None:
    """[JOB-IMAGE.15] Every absolute import of an entry file's module body runs, with the
    file's folder first on sys.path (the job's own modules import, and their imports with
    them); those in a function, ``try`` or ``if`` do not; a module nobody has fails with its
    name and error, as does one the job's own module imports; the job's own module failing
    for another reason (it reads a real run's data) only warns; a syntax error, and a
    missing ``-m`` module, fail; a file not in the image or not Python is skipped."""
    job = tmp_path / "job"
    job.mkdir()
    (job / "train").write_text(textwrap.dedent("""\
        #!/usr/bin/env python3
        from __future__ import annotations
        import json, os.path
        import helper
        from mypkg import sub
        from sklearn.linear_model import LogisticRegression
        import lc_no_such_module_a
        try:
            import lc_no_such_module_b
        except ImportError:
            pass
        if False:
            import lc_no_such_module_c
        def main():
            import lc_no_such_module_d
        from . import relative_is_skipped
        """))
    (job / "helper.py").write_text("import json\nimport lc_no_such_module_e\n")
    (job / "mypkg").mkdir()
    (job / "mypkg" / "__init__.py").write_text("")
    (job / "mypkg" / "sub.py").write_text("import os\nDATA = open('/data/train/x.csv').read()\n")
    (job / "broken.py").write_text("def broken(:\n")
    (job / "run.sh").write_text("#!/bin/sh\nexit 0\n")
    check = _run_script(f"file:{job / 'train'}", f"file:{job / 'broken.py'}",
                        f"file:{job / 'run.sh'}", f"file:{job / 'absent'}",
                        "module:lc_no_such_module_f", "module:json.tool")
    failed = {statement: error for _where, statement, error in check.failed}
    assert failed == {
        "import helper": "ModuleNotFoundError: No module named 'lc_no_such_module_e'",
        "import lc_no_such_module_a": "ModuleNotFoundError: No module named "
                                      "'lc_no_such_module_a'",
        "(parse)": failed["(parse)"],
        "python3 -m lc_no_such_module_f": "ModuleNotFoundError: No module named "
                                          "'lc_no_such_module_f'",
    }, check.failed
    assert failed["(parse)"].startswith("SyntaxError:")
    where = next(w for w, statement, _e in check.failed if statement == "import helper")
    assert where == f"{job / 'train'}:4"
    assert [(s, e.split(":")[0]) for _w, s, e in check.warnings] == [
        ("from mypkg import sub", "FileNotFoundError")]
    assert check.files == 3 and check.statements >= 6 + 1, check  # train: 6; json.tool


