"""``[python] packages`` brings what it requires, and ``job build`` imports the job's modules
in the built image before anything is posted, against the real engine [JOB-IMAGE.12]
[JOB-IMAGE.15].

Three small jobs from the template, whose ``train`` is replaced: one lists scikit-learn and
imports sklearn and scipy (built, and the layer holds SciPy, which it never named), one
imports sklearn without listing it, one imports a module nobody has (both refused by the
import check, naming the module, with no ``image.json`` written). The images are removed at
the end when these tests made their tags.
"""

from __future__ import annotations

import contextlib
import json
import re
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from sandbox.base_image import BASE_TAG
from sandbox.errors import JobDirError
from sandbox.host_packages import SITE_DIR
from sandbox.import_check_cache import CACHE_ENV
from sandbox.job_sources import IMAGE_FILE
from sandbox.job_template import build_job, init_job
from sandbox.package_closure import BASE_IMAGE_DISTRIBUTIONS

pytestmark = pytest.mark.docker

SKLEARN_TRAIN = """\
    #!/usr/bin/env python3
    import scipy.sparse
    import sklearn
    from sklearn.linear_model import LogisticRegression

    print(sklearn.__version__, scipy.sparse.csr_matrix((2, 2)).shape, LogisticRegression)
    """


@pytest.fixture(autouse=True)
def fresh_import_check_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every check here runs in a container: a passed one remembered by an earlier run on
    this machine (``sandbox.import_check_cache``) would skip it."""
    root = tmp_path / "import-checks"
    monkeypatch.setenv(CACHE_ENV, str(root))
    return root


@pytest.fixture
def made_tags(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """Tags a test builds; each removed afterwards unless it existed before."""
    tags: list[str] = []
    before = {tag for image in docker_client.images.list() for tag in image.tags}
    yield tags
    for tag in reversed(tags):
        if tag not in before:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                docker_client.images.remove(tag, force=False, noprune=False)


def _job(root: Path, name: str, train: str, packages: tuple[str, ...] = ()) -> Path:
    job_dir = root / name
    init_job(job_dir, name=name)
    (job_dir / "train").write_text(textwrap.dedent(train))
    if packages:
        with (job_dir / "job.toml").open("a") as f:
            f.write(f"\n[python]\npackages = {json.dumps(list(packages))}\n")
    return job_dir


def test_job_image_12_15_scikit_learn_brings_scipy_and_the_imports_pass(
        docker_client: docker.DockerClient, base_image: str, tmp_path: Path,
        made_tags: list[str]) -> None:
    """[JOB-IMAGE.12] Listing only scikit-learn copies SciPy, joblib, threadpoolctl... too
    (image.json names each with its version and who required it; the log says which were
    added); [JOB-IMAGE.15] the import check then imports sklearn and scipy in the image and
    passes, and the train entry point runs them."""
    job_dir = _job(tmp_path, "pytest-closure-sklearn", SKLEARN_TRAIN, ("scikit-learn",))
    made_tags.append("learningchain/job-pytest-closure-sklearn:latest")
    lines: list[str] = []
    start = time.monotonic()
    built = build_job(docker_client, job_dir, log=lines.append)
    took = time.monotonic() - start
    record = json.loads((job_dir / IMAGE_FILE).read_text())
    assert record["image_id"] == built.image_id
    packages = {p["name"].lower().replace("_", "-"): p for p in record["packages"]}
    assert packages["scikit-learn"]["required_by"] == []
    for dep in ("scipy", "joblib", "threadpoolctl"):
        assert packages[dep]["required_by"] == ["scikit-learn"], packages[dep]
    assert not set(packages) & BASE_IMAGE_DISTRIBUTIONS
    added = next(line for line in lines if "as dependencies:" in line)
    assert "scipy (required by scikit-learn)" in added, lines
    checked = next(line for line in lines if "imports checked in the image" in line)
    assert re.search(r"\d+ import statements of 2 Python entry files", checked), checked
    print(f"built with the closure and the import check in {took:.1f} s: {checked.strip()}")
    out = docker_client.containers.run(built.image_id, ["python3", "/job/train"],
                                       network_mode="none", remove=True, read_only=True)
    assert b"(2, 2)" in out
    # [JOB-IMAGE.16] With a read-only root, every copied module the job imports loads from
    # the byte code compiled at the build: none is compiled from its source (python3 -v
    # names each code object's origin).
    compiled_note = next(line for line in lines if "byte code for" in line)
    assert re.search(r"byte code for \d{3,} Python files \(\d{3,} from the host's",
                     compiled_note), compiled_note
    verbose = docker_client.containers.run(
        built.image_id, ["python3", "-v", "-c", "import sklearn.linear_model, scipy.sparse"],
        network_mode="none", remove=True, read_only=True, stdout=False, stderr=True)
    origins = re.findall(rf"# code object from '?({SITE_DIR}/(?:sklearn|scipy)/[^'\s]+)",
                         verbose.decode(errors="replace"))
    from_source = [path for path in origins if path.endswith(".py")]
    assert len(origins) > 100 and not from_source, (len(origins), from_source[:5])


@pytest.mark.parametrize("name,train,statement,error", [
    ("pytest-imports-unlisted", SKLEARN_TRAIN, "2: import scipy.sparse",
     "ModuleNotFoundError: No module named 'scipy'"),
    ("pytest-imports-missing",
     "#!/usr/bin/env python3\nimport json\nimport lc_no_such_module_anywhere\n",
     "3: import lc_no_such_module_anywhere",
     "ModuleNotFoundError: No module named 'lc_no_such_module_anywhere'"),
], ids=["sklearn-not-listed", "no-such-module"])
def test_job_image_15_an_import_the_image_lacks_is_refused_naming_the_module(
        docker_client: docker.DockerClient, base_image: str, tmp_path: Path,
        made_tags: list[str], name: str, train: str, statement: str, error: str) -> None:
    """[JOB-IMAGE.15] A module the job imports at module level that its image lacks (sklearn
    and scipy not listed under [python] packages; a module nobody has) refuses the build
    with the statement, the module's name and its error, and records no image, so ``job
    submit`` posts nothing; built without the check, the same folder records one."""
    job_dir = _job(tmp_path, name, train)
    made_tags.append(f"learningchain/job-{name}:latest")
    with pytest.raises(JobDirError) as caught:
        build_job(docker_client, job_dir, log=lambda _m: None)
    message = str(caught.value)
    assert f"/job/train:{statement}: {error}" in message, message
    assert "[python] packages" in message and "[JOB-IMAGE.15]" in message
    assert "import json" not in message
    assert not (job_dir / IMAGE_FILE).exists()
    build_job(docker_client, job_dir, log=lambda _m: None, check_imports=False)
    assert (job_dir / IMAGE_FILE).exists()


def test_job_image_12_base_image_distributions_are_what_the_base_image_holds(
        docker_client: docker.DockerClient, base_image: str) -> None:
    """[JOB-IMAGE.12] ``BASE_IMAGE_DISTRIBUTIONS`` is exactly the set ``importlib.metadata``
    lists in the base image (what the closure skips is really there)."""
    script = ("import importlib.metadata as m, re; print(' '.join(sorted("
              "re.sub(r'[-_.]+', '-', d.metadata['Name']).lower() for d in m.distributions())))")
    out = docker_client.containers.run(BASE_TAG, ["python3", "-c", script],
                                       network_mode="none", remove=True)
    assert set(out.decode().split()) == BASE_IMAGE_DISTRIBUTIONS


def test_job_image_15_a_passed_check_is_remembered_for_the_same_image_a_failure_never(
        docker_client: docker.DockerClient, base_image: str, tmp_path: Path,
        made_tags: list[str], fresh_import_check_cache: Path) -> None:
    """[JOB-IMAGE.15] The second build of an unchanged job gives the same image, and its
    passed check is read back (the remembered counts, no container); a refused check leaves
    nothing behind, so the same refusal runs again and says the same."""
    job_dir = _job(tmp_path, "pytest-imports-remembered", "#!/usr/bin/env python3\nimport json\n")
    made_tags.append("learningchain/job-pytest-imports-remembered:latest")
    first: list[str] = []
    built = build_job(docker_client, job_dir, log=first.append)
    ran = next(line for line in first if "imports checked in the image" in line)
    assert "remembered" not in ran and len(list(fresh_import_check_cache.glob("*.json"))) == 1
    again: list[str] = []
    assert build_job(docker_client, job_dir, log=again.append).image_id == built.image_id
    recalled = next(line for line in again if "imports checked in the image" in line)
    assert "passed in this image before, remembered" in recalled, again
    assert ran.split(" Python entry files")[0] == recalled.split(" Python entry files")[0]

    refused_dir = _job(tmp_path, "pytest-imports-refused-twice",
                       "#!/usr/bin/env python3\nimport lc_no_such_module_anywhere\n")
    made_tags.append("learningchain/job-pytest-imports-refused-twice:latest")
    for _ in range(2):
        with pytest.raises(JobDirError, match="lc_no_such_module_anywhere"):
            build_job(docker_client, refused_dir, log=lambda _m: None)
    assert len(list(fresh_import_check_cache.glob("*.json"))) == 1
