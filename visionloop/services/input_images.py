"""Stored inputs' images as browsers and clients fetch them: the original bytes, or a thumbnail.

A thumbnail is made the first time it is asked for and kept beside its image in the blob store,
under the image's digest, so every later request (from any process sharing the store) reads it.
Both are named by the image's digest, which makes a validator that never lies: the ETag.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from typing import Any

from PIL import Image, ImageDraw

from visionloop import errors
from visionloop.inference.preprocess import to_rgb
from visionloop.learning.boxes import Box
from visionloop.learning.vocabulary import RegionFeedback
from visionloop.services.image_source import without_image
from visionloop.services.inputs import InputService
from visionloop.store.blobs import BlobMissing, BlobStore

THUMBNAIL = "thumbnail"
SIZES = ("original", THUMBNAIL)
_THUMB_SIDE = 256
_THUMB_KIND = f"thumb{_THUMB_SIDE}"


@dataclasses.dataclass(frozen=True)
class ServedImage:
    data: bytes
    media_type: str
    etag: str  # quoted, as the header carries it


class InputImages:
    def __init__(self, inputs: InputService, blobs: BlobStore) -> None:
        self.inputs = inputs
        self.blobs = blobs

    def etag(self, app_id: str, input_id: str, size: str) -> str:
        """The ETag of an input's image at ``size``, without reading the image (for 304s)."""
        digest = self._digest(app_id, input_id)
        return f'"{digest}"' if size != THUMBNAIL else f'"{digest}-{_THUMB_KIND}"'

    def get(self, app_id: str, input_id: str, size: str) -> ServedImage:
        digest = self._digest(app_id, input_id)
        try:
            if size != THUMBNAIL:
                data = self.blobs.get(digest)
                return ServedImage(data, _media_type(data), f'"{digest}"')
            return ServedImage(self.thumbnail(digest), "image/jpeg", f'"{digest}-{_THUMB_KIND}"')
        except BlobMissing as exc:
            raise errors.InputImageMissing(f"input {input_id!r}: its image is not in this server's blob store "
                                           f"({exc})") from exc

    def _digest(self, app_id: str, input_id: str) -> str:
        """The digest of an input's image; an input whose download failed has none to serve."""
        row = self.inputs.get(app_id, input_id).row
        if row.digest is None:
            raise without_image("input_id", input_id, row.status_details)
        return row.digest

    def thumbnail(self, digest: str) -> bytes:
        return thumbnail(self.blobs, digest)


def thumbnail(blobs: BlobStore, digest: str) -> bytes:
    """The JPEG thumbnail of stored image ``digest``, made on first use and kept (the evaluation
    report's examples use the same ones)."""
    thumb = blobs.get_derived(digest, _THUMB_KIND)
    if thumb is None:
        thumb = _thumbnail(blobs.get(digest))
        with contextlib.suppress(OSError):  # kept to save the next request the work: not needed to answer
            blobs.put_derived(digest, _THUMB_KIND, thumb)
    return thumb


# One colour per region verdict, as the console's legend names them.
VERDICT_COLOURS: dict[str, str] = {RegionFeedback.ACCURATE: "#16a34a", RegionFeedback.MISPLACED: "#f59e0b",
                                   RegionFeedback.NOT_DETECTED: "#2563eb", RegionFeedback.FALSE_POSITIVE: "#dc2626"}


PREDICTED_COLOUR = "#ffffff"


def draw_regions(jpeg: bytes, regions: list[dict[str, Any]], predicted: dict[str, Box] | None = None) -> bytes:
    """A thumbnail with each judged region's box drawn in its verdict's colour and, where the
    feedback moved a predicted box, the predicted one beside it in thin white (boxes are fractions
    of the image: [top, left, bottom, right])."""
    with Image.open(io.BytesIO(jpeg)) as image:
        canvas = image.convert("RGB")
    pen = ImageDraw.Draw(canvas)
    w, h = canvas.size

    def rectangle(top: float, left: float, bottom: float, right: float, colour: str, width: int) -> None:
        pen.rectangle((left * w, top * h, max(left * w, right * w - 1), max(top * h, bottom * h - 1)),
                      outline=colour, width=width)

    for region in regions:
        box = region.get("box")
        if not box or len(box) != 4:
            continue
        was = (predicted or {}).get(str(region.get("region_id")))
        if was is not None and [was.top, was.left, was.bottom, was.right] != [float(v) for v in box]:
            rectangle(was.top, was.left, was.bottom, was.right, PREDICTED_COLOUR, 1)
        top, left, bottom, right = (float(v) for v in box)
        rectangle(top, left, bottom, right, VERDICT_COLOURS.get(region.get("feedback") or "", "#111111"), 2)
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _media_type(data: bytes) -> str:
    """The stored image's media type (it was checked when stored, so Pillow reads its header)."""
    with Image.open(io.BytesIO(data)) as image:
        fmt = "JPEG" if image.format == "MPO" else image.format
    return Image.MIME.get(fmt or "", "application/octet-stream")


def _thumbnail(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)  # the first frame of an animation
        small = to_rgb(image)
        small.thumbnail((_THUMB_SIDE, _THUMB_SIDE))
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=85)
    return buf.getvalue()
