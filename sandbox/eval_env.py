"""The evaluation environment, fixed by construction [EVAL-ENV.*].

A loss a voter measures must be the loss the claimer measured when the job
follows the contract. So everything a container run could otherwise vary
and the runner controls is fixed here: the hostname, the environment (its
variables and their order), a seed, thread counts, and the names, modes,
owner and times of every file the runner puts in. What the runner cannot
fix (the clock, inode numbers, the host's CPU count, the container's id)
is *incidental*; ``SandboxRunner.evaluate(..., variant=1)`` varies some of
it on purpose so a worker can see a job that depends on it before it
claims [EVAL-ENV.8].
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

HOSTNAME = "lc-job"
"""[EVAL-ENV.1] The hostname of every job container."""
FIXED_TIME = 946_684_800
"""[EVAL-ENV.4] 2000-01-01T00:00:00Z: atime and mtime of every file and folder put in."""
FILE_MODE = 0o644
DIR_MODE = 0o755
THREADS = "1"
"""[EVAL-ENV.3] Threads of every math library in evaluation: the same for every evaluator."""
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
"""Read by OpenMP (and so by PyTorch's intra-op pool), MKL, OpenBLAS, numexpr, Accelerate."""
SEED_DOMAIN = b"learningchain/eval-seed/v1\x00"
CHALLENGE_FILE = "challenge.json"
"""[VOTE-CHALLENGE.1] In a voter's evaluation input folder ($LC_INPUT): the turn's challenge
seed and size, which evaluate answers with ``challenge_loss`` (job_contract.md §4)."""
VARIANT_DELAY_S = 1.1
"""[EVAL-ENV.8] A variant run starts this much later per variant: a clock read differs."""


def eval_seed(job_id: str | bytes) -> int:
    """[EVAL-ENV.2] The evaluation seed of a job: SHA-256(domain || job id), top 63 bits.

    The same for the claimer and every voter, different between jobs.
    ``job_id`` is the 32-byte job id or its 64-digit hex form (the same seed);
    any other string (a test's label) is hashed as its UTF-8 bytes.
    """
    if isinstance(job_id, str) and len(job_id) == 64 and all(
            c in "0123456789abcdefABCDEF" for c in job_id):
        job_id = bytes.fromhex(job_id)  # the hex form names the same 32 bytes
    raw = job_id if isinstance(job_id, bytes) else job_id.encode("utf-8")
    return int.from_bytes(hashlib.sha256(SEED_DOMAIN + raw).digest()[:8], "big") >> 1


def evaluation_env(seed: int) -> dict[str, str]:
    """[EVAL-ENV.2-3] Variables every evaluation gets on top of [JOB-ENTRY.2]'s."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"evaluation seed must be an int in [0, 2**63), got {seed!r}")
    env = {"PYTHONHASHSEED": "0", "LC_SEED": str(seed)}
    env.update(dict.fromkeys(THREAD_VARIABLES, THREADS))
    return env


def ordered_env(env: Mapping[str, str]) -> dict[str, str]:
    """[EVAL-ENV.2] Variables in sorted order: the order a job sees never varies."""
    return {key: env[key] for key in sorted(env)}


def fix_tree(root: Path) -> None:
    """[EVAL-ENV.4] Fixed modes, owner (when the node can) and times on ``root`` and below.

    Folders last, deepest first, so writing their children does not move
    their times again.
    """
    as_root = os.geteuid() == 0
    folders: list[Path] = []
    for here, dirs, files in os.walk(root, followlinks=False):
        folders.append(Path(here))
        for name in files:
            path = Path(here) / name
            _fix(path, FILE_MODE, as_root)
        for name in dirs:
            if (Path(here) / name).is_symlink():
                raise ValueError(f"input {Path(here) / name} is a link; inputs are plain files")
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        _fix(folder, DIR_MODE, as_root)


def _fix(path: Path, mode: int, as_root: bool) -> None:
    if path.is_symlink() or not (path.is_file() or path.is_dir()):
        raise ValueError(f"input {path} is not a plain file or folder")
    path.chmod(mode)
    if as_root:
        os.chown(path, 0, 0)
    os.utime(path, (FIXED_TIME, FIXED_TIME), follow_symlinks=False)


def stage_model(model_path: Path, staging: Path, file_name: str) -> Path:
    """[EVAL-ENV.4] A private copy of the model in ``staging/model/<file_name>``, fixed.

    Returns the folder to mount. The copy is fresh for every run, so the
    job can never change what the next run sees.
    """
    folder = staging / "model"
    folder.mkdir(mode=DIR_MODE)
    shutil.copyfile(model_path, folder / file_name, follow_symlinks=True)
    fix_tree(folder)
    return folder


def stage_input(input_dir: Path, staging: Path) -> Path:
    """[EVAL-ENV.4] A private copy of an input folder in ``staging/input``, fixed."""
    folder = staging / "input"
    shutil.copytree(input_dir, folder, symlinks=True)
    fix_tree(folder)
    return folder


def write_challenge(folder: Path, seed: bytes, size: int) -> Path:
    """[VOTE-CHALLENGE.1] ``folder/challenge.json`` = {"seed": 64 hex digits, "size": n}: what
    a voter's evaluation gets as its input folder, so evaluate reports, in the same run,
    the model's loss on the ``size`` examples the seed picks. Returns ``folder``."""
    if len(seed) != 32 or not 1 <= size <= 1 << 20:
        raise ValueError(f"a challenge is a 32-byte seed and a size in 1..2**20, got "
                         f"{len(seed)} bytes and {size}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CHALLENGE_FILE).write_text(json.dumps({"seed": seed.hex(), "size": size}))
    return folder
