"""Decode and check client images before anything stores or models them.

Image bytes come from strangers, so the checks run cheapest first: size in bytes, then the
format and the pixel count read lazily from the header (a few bytes can claim 100k x 100k pixels,
a decompression bomb), and only then a full decode, which also catches truncated data. Pillow is
trusted to parse, not to judge: its failures, whatever their type, become our ``ApiError``s.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

from visionloop.errors import ApiError, ImageStoreUnavailable, InputInvalid, InputOverLimit, InputUnsupportedFormat
from visionloop.inference.preprocess import to_rgb
from visionloop.store.blobs import BlobStore, BlobUnavailable, digest_of

log = logging.getLogger(__name__)

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"})
# Pillow names multi-picture JPEGs (most phone cameras) "MPO"; to everyone else they are JPEGs.
_FORMAT_ALIASES = {"MPO": "JPEG"}
# Formats Pillow cannot open at all; sniffed so they are "unsupported", not "corrupt".
_FOREIGN_SIGNATURES: tuple[tuple[re.Pattern[bytes], str], ...] = tuple(
    (re.compile(pattern, re.DOTALL), name)
    for pattern, name in (
        (rb"%PDF-", "PDF"),
        (rb"\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<(svg|!DOCTYPE svg)", "SVG"),
        (rb"....ftyp(heic|heix|hevc|hevx|heim|heis|mif1|msf1)", "HEIF"),
    )
)


@dataclass(frozen=True)
class CheckedImage:
    """Image bytes known to decode, with what the rest of the API needs to know about them.

    ``pixels`` keeps the decoded image so models do not decode the same bytes a second time.
    """

    data: bytes
    digest: str
    width: int
    height: int
    format: str
    pixels: Image.Image | None = field(default=None, compare=False, repr=False)


def check_image(data: bytes, *, max_bytes: int, max_pixels: int, min_side: int | None = None) -> CheckedImage:
    """Accept ``data`` only if it is a whole, supported image within both size limits.

    ``min_side``: the smallest width and height the caller's model needs. A larger JPEG is then
    decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (a phone photo decodes ~10x faster);
    every byte is still read, so a truncated file is refused all the same. ``width`` and
    ``height`` stay the image's own.
    """
    if not data:
        raise InputInvalid("image data is empty")
    if len(data) > max_bytes:
        raise InputOverLimit(f"image is {len(data)} bytes, over the limit of {max_bytes} bytes")
    for signature, name in _FOREIGN_SIGNATURES:
        if signature.match(data, 0, 512):
            raise InputUnsupportedFormat(f"{name} is not a supported image format")
    with _pillow_failures():
        with warnings.catch_warnings():
            # Our max_pixels decides below, not Pillow's process-wide MAX_IMAGE_PIXELS (only its
            # hard error, at twice that, still fires). catch_warnings is not thread-safe, but the
            # worst a race can do is drop this filter, and a warning raised as an error is mapped.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        with image:
            fmt = _FORMAT_ALIASES.get(str(image.format), str(image.format))
            if fmt not in SUPPORTED_FORMATS:
                raise InputUnsupportedFormat(f"{fmt} is not a supported image format")
            width, height = image.size
            if width * height > max_pixels:
                raise InputOverLimit(f"image is {width} x {height} pixels, over the limit of {max_pixels} pixels")
            if min_side and fmt == "JPEG":
                image.draft(None, (min_side, min_side))
            image.load()
    return CheckedImage(data=data, digest=digest_of(data), width=width, height=height, format=fmt, pixels=image)


def decode_base64(value: str) -> bytes:
    """Strict base64, forgiving only what clients really send: whitespace, urlsafe, no padding."""
    text = "".join(value.split())
    body = text.rstrip("=")
    padding = len(text) - len(body)
    urlsafe = "-" in body or "_" in body
    if urlsafe and ("+" in body or "/" in body):
        raise InputInvalid("not valid base64 (it mixes the standard and urlsafe alphabets)")
    if urlsafe:
        body = body.translate(str.maketrans("-_", "+/"))
    if padding > 2 or len(body) % 4 == 1 or "=" in body:
        raise InputInvalid("not valid base64")
    try:  # validate=True refuses any other character outside the alphabet (a regex took 1 ms per 100 kB)
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputInvalid("not valid base64") from exc


def open_rgb(image: CheckedImage) -> Image.Image:
    """Upright 8-bit RGB pixels of a checked image, decoding the bytes only if not yet decoded."""
    pixels = image.pixels
    if pixels is None:
        with _pillow_failures():
            pixels = Image.open(io.BytesIO(image.data))
            pixels.load()
    return to_rgb(pixels)


@contextlib.contextmanager
def _pillow_failures() -> Iterator[None]:
    """Map whatever Pillow raises on hostile bytes to an ``ApiError``; ours pass through untouched.

    Corrupt files make Pillow raise far more than ``OSError`` (``SyntaxError``, ``struct.error``,
    ``IndexError``, ``ValueError``, warnings turned into errors...), so the net is deliberately wide.
    """
    try:
        yield
    except ApiError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputOverLimit("image dimensions are over the pixel limit") from exc
    except MemoryError as exc:
        raise InputOverLimit("image is too large to decode") from exc
    except Exception as exc:
        raise InputInvalid(f"image data is corrupt or not an image: {_reason(exc)}") from exc


def _reason(exc: Exception) -> str:
    """A short, address-free reason (Pillow's messages can embed object reprs)."""
    if isinstance(exc, UnidentifiedImageError):
        return "unrecognised data"
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def keep(blobs: BlobStore, image: CheckedImage, field: str) -> None:
    """Store an image before any row names it; a store that refuses it fails ``field`` with 503."""
    try:
        blobs.put(image.data, image.digest)
    except BlobUnavailable as exc:
        raise ImageStoreUnavailable(f"{field}: not stored ({exc})") from exc


def still_kept(blobs: BlobStore, images: Iterable[CheckedImage]) -> None:
    """After the commit of rows naming ``images``: put back any that a blob collector in another
    process deleted between their :func:`keep` and that commit (the race
    :mod:`visionloop.services.blob_gc` explains). The rows are committed, so a store that fails now
    is logged, not answered: the image was stored once and only that race could have removed it."""
    for image in {im.digest: im for im in images}.values():
        try:
            if not blobs.exists(image.digest):
                blobs.put(image.data, image.digest)
        except (BlobUnavailable, OSError) as exc:
            log.warning("could not check that blob %s is still stored: %s", image.digest, exc)
