"""What a job's ``[python] packages`` really brings: the named distributions and everything
they require, as the host has them installed [JOB-IMAGE.12].

A job author names what the code imports (``scikit-learn``, ``onnx``) and expects pip's
behaviour: what those need (SciPy, protobuf, ...) comes too. No registry is reachable from
a build, so the closure is read from the host's own installed metadata
(``importlib.metadata``): each distribution's ``Requires-Dist``, its environment markers
evaluated for the image's interpreter (``IMAGE_ENVIRONMENT``: CPython 3.11 on x86_64 Linux,
not the host's), an extra only where a requirement names it (``foo[bar]``). What the base
image already holds (``BASE_IMAGE_DISTRIBUTIONS``) is not copied again. A requirement the
host has not installed refuses the whole job, naming it and the named package that needs
it, before anything is built or posted.

Pure apart from reading installed metadata through ``lookup``; the order is deterministic:
the named distributions in job.toml's order, then their requirements by canonical name.
"""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from sandbox.errors import SandboxError

IMAGE_ENVIRONMENT: Mapping[str, str] = {
    "implementation_name": "cpython",
    "implementation_version": "3.11.2",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": "3.11.2",
    "python_version": "3.11",
    "sys_platform": "linux",
}
"""[JOB-IMAGE.12] The PEP 508 marker environment of the base image's interpreter (Debian
bookworm's ``python3``, 3.11.2, on x86_64): requirements are selected for it, not for the
host (the host must run CPython 3.11 on x86_64 anyway, ``check_host_python``). The kernel's
release and version are unknown at build time and left empty."""

BASE_IMAGE_DISTRIBUTIONS: frozenset[str] = frozenset({
    "torch", "numpy",  # sandbox.base_image.PYTHON_REQUIREMENTS
    "filelock", "fsspec", "jinja2", "markupsafe", "mpmath", "networkx", "setuptools",
    "sympy", "typing-extensions",  # what torch 2.13.0 requires, as pip installed them
})
"""[JOB-IMAGE.12] The distributions the base image ``learningchain/base:bookworm-torch2.13.0-2``
holds (canonical names): torch and numpy and the closure of their requirements, exactly the
set ``importlib.metadata`` lists inside that image (a docker test compares them). A
requirement on one of these is met by the base image's copy and never copied from the
host. Update with ``sandbox.base_image.BASE_TAG``."""


class PackageClosureError(SandboxError):
    """A required distribution cannot be found on the host; the message names it and the
    named package that needs it."""

    def __init__(self, missing: str, chain: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.missing = missing
        """The distribution (as the requirement spells it) not installed on the host."""
        self.chain = chain
        """From the name job.toml lists to the requirement that failed, each a
        distribution name (the last one a requirement string)."""


@dataclass(frozen=True, slots=True)
class ResolvedDist:
    """One distribution of the closure as installed on the host."""

    name: str
    """As its own metadata spells it (``scikit-learn``, ``typing_extensions``)."""
    version: str
    required_by: tuple[str, ...]
    """Names of the closure's distributions whose requirements pulled it in, sorted;
    empty for one that job.toml lists itself."""
    extras: tuple[str, ...] = ()
    """The extras some requirement asked of it (``foo[bar]``), sorted."""


@dataclass(frozen=True, slots=True)
class Closure:
    """What ``resolve_closure`` found: the distributions to copy, in copy order."""

    dists: tuple[ResolvedDist, ...]
    skipped: tuple[str, ...]
    """Requirements met by the base image (``BASE_IMAGE_DISTRIBUTIONS``), canonical, sorted."""
    mismatches: tuple[str, ...] = ()
    """Requirements whose specifier the host's installed version does not meet (copied
    as installed, as the host runs them; worth a warning, not a refusal)."""

    @property
    def added(self) -> tuple[ResolvedDist, ...]:
        """Those copied only because something named requires them."""
        return tuple(d for d in self.dists if d.required_by)


Lookup = Callable[[str], md.Distribution | None]


def host_lookup(name: str) -> md.Distribution | None:
    """The host's installed distribution ``name`` (any spelling), or None."""
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        return None


def image_requirements(dist: md.Distribution, extras: Iterable[str] = (),
                       environment: Mapping[str, str] = IMAGE_ENVIRONMENT
                       ) -> list[Requirement]:
    """[JOB-IMAGE.12] ``dist``'s ``Requires-Dist`` that apply in the image: markers evaluated
    for ``environment`` with no extra, or with one of ``extras``."""
    return [req for req, _extra in _requirements(dist, extras, environment)]


def _requirements(dist: md.Distribution, extras: Iterable[str],
                  environment: Mapping[str, str]) -> list[tuple[Requirement, str]]:
    """``image_requirements`` with, for each, the extra it applies under (``""``: none)."""
    wanted = ("", *sorted({canonicalize_name(e) for e in extras}))
    out = []
    for line in dist.requires or ():
        try:
            req = Requirement(line)
        except InvalidRequirement as e:
            name = dist.metadata["Name"] or "?"
            raise PackageClosureError(line, (name,), f"{name} {dist.version}: unreadable "
                                      f"requirement {line!r} in its metadata: {e}") from e
        marker = req.marker
        extra = next((e for e in wanted if marker is None or _applies(marker, environment, e)),
                     None)
        if extra is not None:
            out.append((req, extra))
    return out


def resolve_closure(names: Iterable[str], lookup: Lookup = host_lookup,
                    base: frozenset[str] = BASE_IMAGE_DISTRIBUTIONS,
                    environment: Mapping[str, str] = IMAGE_ENVIRONMENT) -> Closure:
    """[JOB-IMAGE.12] The named distributions and the transitive closure of their
    requirements, as ``lookup`` (the host's installed metadata) has them, minus ``base``.

    ``PackageClosureError`` names the first distribution (in the deterministic walk) that is
    not installed, and the named package whose requirements led to it."""
    named = [canonicalize_name(n) for n in names]
    found: dict[NormalizedName, md.Distribution] = {}
    extras: dict[NormalizedName, set[str]] = {}
    done_extras: dict[NormalizedName, frozenset[str]] = {}
    parents: dict[NormalizedName, set[str]] = {}
    via: dict[tuple[NormalizedName, str], tuple[str, ...]] = {}
    """The first chain of names that reached each distribution, and each extra of it (for
    the refusal: a requirement under an extra names who asked for the extra)."""
    skipped: set[str] = set()
    mismatches: set[str] = set()
    spelled = dict(zip(named, names, strict=True))
    todo: list[NormalizedName] = []
    for key in named:
        if key in base:
            skipped.add(key)
            continue
        dist = lookup(spelled[key])
        if dist is None:
            raise PackageClosureError(spelled[key], (spelled[key],),
                                      f"{spelled[key]} is not installed on the host; the image "
                                      f"copies it from the host's environment (pip install it "
                                      f"there)")
        found[key], extras[key], via[key, ""] = dist, set(), (_name(dist),)
        todo.append(key)
    while todo:  # breadth-first in a fixed order: the same names give the same walk
        key = todo.pop(0)
        asked = frozenset(extras[key])
        if done_extras.get(key) == asked:
            continue
        done_extras[key] = asked
        dist = found[key]
        for req, extra in sorted(_requirements(dist, asked, environment), key=_by_text):
            dep = canonicalize_name(req.name)
            if dep in base:
                skipped.add(dep)
                continue
            path = via[key, extra]
            if dep not in found:
                got = lookup(req.name)
                if got is None:
                    chain = (*path, str(req))
                    raise PackageClosureError(
                        req.name, chain,
                        f"{req.name} is not installed on the host, and {chain[0]} needs it "
                        f"({' -> '.join(chain)}); the image copies what [python] packages "
                        f"requires from the host's environment: pip install {req.name} there "
                        f"(or list a package that does not need it)")
                found[dep], extras[dep], via[dep, ""] = got, set(), (*path, _name(got))
            if dep not in named:
                parents.setdefault(dep, set()).add(_name(dist))
            if req.specifier and not req.specifier.contains(found[dep].version,
                                                            prereleases=True):
                mismatches.add(f"{_name(dist)} requires {req}, the host has "
                               f"{_name(found[dep])} {found[dep].version}")
            for e in sorted({canonicalize_name(e) for e in req.extras} - extras[dep]):
                extras[dep].add(e)
                via[dep, e] = (*path, f"{_name(found[dep])}[{e}]")
            if done_extras.get(dep) != frozenset(extras[dep]):
                todo.append(dep)
    order = [k for k in named if k in found] + sorted(k for k in found if k not in named)
    return Closure(tuple(ResolvedDist(_name(found[k]), found[k].version,
                                      tuple(sorted(parents.get(k, ()))),
                                      tuple(sorted(extras[k]))) for k in order),
                   tuple(sorted(skipped)), tuple(sorted(mismatches)))


def _by_text(item: tuple[Requirement, str]) -> str:
    return str(item[0])


def _applies(marker: Marker, environment: Mapping[str, str], extra: str) -> bool:
    return marker.evaluate({**environment, "extra": extra})


def _name(dist: md.Distribution) -> str:
    return str(dist.metadata["Name"] or "")
