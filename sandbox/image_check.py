"""Checking a saved image's sizes before the engine sees it [JOB-IMAGE.5].

A job declares two image sizes (``chain.jobspec.ResourceLimits``):
``image_mb``, the saved-image tar a worker fetches, and
``image_unpacked_mb``, what the engine may write when loading it. The blob's
size alone bounds nothing the engine writes: re-packing a layer of a saved
image with gzip keeps its ``diff_id`` and so the image id, and a 2 MB blob
then unpacks to 2 GiB. So every layer is read here, decompressed in a
streaming, bounded way, and its tar headers summed, stopping as soon as the
declared bound is passed; no byte is written to disk.

The measure (``unpacked_bytes``) is the sum, over every entry of every
layer, of one 512-byte header plus its content rounded up to 512 bytes, with
a sparse file counted at its full apparent size (what the engine writes).
``job build`` declares what this same function measures, so an honest image
always passes.
"""

from __future__ import annotations

import bz2
import lzma
import math
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sandbox.errors import ImageBlobError, ImageContentRefused
from sandbox.job_json import JobJsonError, JsonBounds, parse_json

MIB = 1024 * 1024
BLOCK = 512
READ_SIZE = 256 * 1024
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_LAYERS = 256


class ImageTooLarge(ImageBlobError):
    """The blob or its unpacked layers exceed what the job declared [JOB-IMAGE.5]."""

    def __init__(self, what: str, limit_bytes: int, seen_bytes: int) -> None:
        super().__init__(f"image {what} exceeds the declared {limit_bytes} bytes "
                         f"(at least {seen_bytes} bytes); job refused before loading")
        self.what = what
        self.limit_bytes = limit_bytes
        self.seen_bytes = seen_bytes


@dataclass(frozen=True, slots=True)
class ImageSizes:
    """What ``measure_image`` found; ``mb`` values are what a job declares."""

    blob_bytes: int
    unpacked_bytes: int

    @property
    def image_mb(self) -> int:
        return max(1, math.ceil(self.blob_bytes / MIB))

    @property
    def image_unpacked_mb(self) -> int:
        return max(1, math.ceil(self.unpacked_bytes / MIB))


def check_image_tar(path: Path, image_mb: int, image_unpacked_mb: int) -> ImageSizes:
    """[JOB-IMAGE.5] Refuse ``path`` unless it fits the declared sizes; before loading.

    Raises ``ImageTooLarge`` as soon as a bound is passed, ``ImageBlobError``
    for a tar that is not a saved image. Reads at most
    ``image_unpacked_mb`` MiB of decompressed data.
    """
    blob = path.stat().st_size
    if blob > image_mb * MIB:
        raise ImageTooLarge("blob", image_mb * MIB, blob)
    return ImageSizes(blob, _unpacked(path, image_unpacked_mb * MIB))


def measure_image(path: Path) -> ImageSizes:
    """The sizes of a saved image, for ``job build`` to declare (no bound)."""
    return ImageSizes(path.stat().st_size, _unpacked(path, None))


def image_sizes(client: Any, image_id: str, path: Path) -> ImageSizes:
    """What ``job build`` declares for an exported image [JOB-IMAGE.5]: the blob's size,
    and the larger of the measured unpacked size and the engine's own ``Size``."""
    measured = measure_image(path)
    size = client.api.inspect_image(image_id).get("Size")
    engine = size if isinstance(size, int) and size > 0 else 0
    return ImageSizes(measured.blob_bytes, max(measured.unpacked_bytes, engine))


def measure_layers(layers: list[Path], blob_bytes: int) -> ImageSizes:
    """The sizes of an image held as layer files [JOB-IMAGE.6]: ``blob_bytes`` (config
    and layers, what a worker holding nothing fetches) and the same unpacked measure."""
    return ImageSizes(blob_bytes, unpacked_layers(layers, None))


def unpacked_layers(layers: list[Path], limit: int | None, *, plain: bool = False) -> int:
    """[JOB-IMAGE.5] The unpacked size of these layer files, stopped past ``limit`` bytes.

    [JOB-IMAGE.13] Each must be a tar the engine can load (``_layer_size``); ``plain``:
    and uncompressed, as a layer named by its ``diff_id`` must be (the digest of a
    plain tar), else the engine's digest of what it unpacks cannot match.
    """
    total = 0
    for path in layers:
        try:
            with open(path, "rb") as handle:
                total = _layer_size(handle, total, limit, path.name, plain=plain)
        except ImageBlobError:
            raise
        except (tarfile.TarError, EOFError, ValueError, zlib.error, lzma.LZMAError) as e:
            raise ImageContentRefused(f"{path.name}: not a readable layer: "
                                      f"{type(e).__name__}: {e}") from None
        except OSError as e:  # the host's own disk: not the image's fault
            raise ImageBlobError(f"{path}: could not read a layer: {e}") from None
    return total


def _unpacked(path: Path, limit: int | None) -> int:
    try:
        with tarfile.open(path, mode="r:") as outer:
            layers = _layer_names(outer)
            total = 0
            for name in layers:
                member = outer.getmember(name)
                if not member.isreg():
                    raise ImageBlobError(f"{path}: layer {name!r} is not a regular file")
                handle = outer.extractfile(member)
                if handle is None:
                    raise ImageBlobError(f"{path}: layer {name!r} is unreadable")
                total = _layer_size(handle, total, limit, name)
            return total
    except ImageBlobError:
        raise
    except (tarfile.TarError, KeyError, EOFError, ValueError, zlib.error,
            lzma.LZMAError) as e:  # [JOB-IMAGE.13] the blob's own bytes: never loadable
        raise ImageContentRefused(f"{path.name}: not a readable saved image: "
                                  f"{type(e).__name__}: {e}") from None
    except OSError as e:  # the host's own disk: not the image's fault
        raise ImageBlobError(f"{path}: could not read the saved image: {e}") from None


def _layer_names(outer: tarfile.TarFile) -> list[str]:
    member = outer.getmember("manifest.json")
    if not member.isreg() or member.size > MAX_MANIFEST_BYTES:
        raise ImageBlobError("manifest.json is not a regular file under 1 MiB")
    handle = outer.extractfile(member)
    if handle is None:
        raise ImageBlobError("manifest.json is unreadable")
    try:
        manifest = parse_json(handle.read(), JsonBounds(max_bytes=MAX_MANIFEST_BYTES))
    except JobJsonError as e:
        raise ImageBlobError(f"manifest.json: {e}") from None
    if not isinstance(manifest, list) or len(manifest) != 1 or not isinstance(manifest[0], dict):
        raise ImageBlobError("manifest.json must describe exactly one image")
    layers = manifest[0].get("Layers")
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers) \
            or len(layers) > MAX_LAYERS:
        raise ImageBlobError(f"manifest.json Layers must be a list of at most {MAX_LAYERS} names")
    return [name.lstrip("/") for name in layers]


class _Decompressed:
    """A bounded, streaming reader of one (maybe compressed) layer, as the engine reads it.

    gzip (every member of a multi-member stream), bzip2, xz or plain tar, by
    magic bytes, as ``docker load`` accepts them. Never holds more than one
    ``READ_SIZE`` of output at a time.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        head = raw.read(6)
        self._pending = head
        self._make: Callable[[], Any] | None
        if head.startswith(b"\x1f\x8b"):
            self._make = lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif head.startswith(b"BZh"):
            self._make = bz2.BZ2Decompressor
        elif head.startswith(b"\xfd7zXZ\x00"):
            self._make = lzma.LZMADecompressor
        elif head.startswith(b"\x28\xb5\x2f\xfd"):
            raise ImageContentRefused("zstd-compressed layers are not accepted")
        else:
            self._make = None
        self._engine = self._make() if self._make else None
        self._out = b""

    @property
    def compressed(self) -> bool:
        return self._make is not None

    def read(self, size: int = -1) -> bytes:
        want = READ_SIZE if size < 0 else size
        while len(self._out) < want:
            data = self._more(want - len(self._out))
            if data is None:
                break
            self._out += data
        out, self._out = self._out[:want], self._out[want:]
        return out

    def _take(self) -> bytes:
        chunk = self._pending or self._raw.read(READ_SIZE)
        self._pending = b""
        return chunk

    def _more(self, room: int) -> bytes | None:
        """At most ``room`` more decompressed bytes; None at the end of the layer."""
        engine = self._engine
        if engine is None:
            return self._take() or None
        if isinstance(engine, bz2.BZ2Decompressor | lzma.LZMADecompressor):
            if engine.eof:
                return None
            chunk = self._take() if engine.needs_input else b""
            if engine.needs_input and not chunk:
                return None  # cut short: the engine would refuse it too
            return engine.decompress(chunk, max_length=room)
        if engine.eof:  # the next member of a multi-member gzip, or the end
            rest = engine.unused_data
            while len(rest) < 2:  # a member may end just before a read boundary
                more = self._take()
                if not more:
                    break
                rest += more
            if not rest.startswith(b"\x1f\x8b"):
                return None
            assert self._make is not None
            self._engine = engine = self._make()
            return engine.decompress(rest, room)
        chunk = engine.unconsumed_tail or self._take()
        if not chunk:
            return None
        return engine.decompress(chunk, room)


def _layer_size(handle: IO[bytes], total: int, limit: int | None, name: str, *,
                plain: bool = False) -> int:
    """Add one layer's unpacked measure to ``total``, checking what the engine would refuse
    [JOB-IMAGE.13]: a hard link must name a regular file written earlier in the same layer
    (the engine unpacks each layer alone: a link to anything else fails ``docker load``)."""
    stream = _Decompressed(handle)
    if plain and stream.compressed:
        raise ImageContentRefused(f"layer {name} is compressed: a layer named by its diff_id "
                                  "must be the plain tar that digest is of")
    files: set[str] = set()
    with tarfile.open(fileobj=stream, mode="r|") as layer:  # type: ignore[call-overload]
        for member in layer:
            total += BLOCK + math.ceil(max(0, member.size) / BLOCK) * BLOCK
            if limit is not None and total > limit:
                raise ImageTooLarge(f"unpacked layers (at {name})", limit, total)
            path = _layer_path(member.name)
            if member.islnk():
                if _layer_path(member.linkname) not in files:
                    raise ImageContentRefused(
                        f"layer {name}: hard link {_cut(member.name)!r} -> "
                        f"{_cut(member.linkname)!r} points out of its layer")
                files.add(path)
            elif member.isreg():
                files.add(path)
            else:
                files.discard(path)
    return total


def _layer_path(name: str) -> str:
    """A layer entry's path as the engine resolves it: below the layer's root, normalized."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def _cut(text: str) -> str:
    return text if len(text) <= 120 else text[:120] + "..."
