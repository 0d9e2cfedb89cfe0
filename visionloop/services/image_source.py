"""Where an image in a request comes from (base64, URL, stored input) and turning it into checked bytes."""

from __future__ import annotations

import dataclasses

from visionloop import errors
from visionloop.services.fetch import ImageFetcher
from visionloop.services.images import CheckedImage, check_image, decode_base64


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """Exactly one of ``base64`` (still encoded) or ``url``."""

    base64: str | None = None
    url: str | None = None
    field: str = dataclasses.field(default="data.image", compare=False)  # where the request gave it

    @classmethod
    def of(cls, base64: str | None, url: str | None, field: str) -> ImageSource:
        if base64 and url:
            raise errors.InputInvalid(f"{field}: give either base64 or url, not both")
        if not base64 and not url:
            raise errors.InputInvalid(f"{field}: an image needs base64 or url")
        return cls(base64=base64 or None, url=url or None, field=field)


def without_image(field: str, input_id: str, cause: str | None) -> errors.ApiError:
    """The refusal to use as an image a stored input whose URL could not be fetched or decoded."""
    where = f"{field}: input {input_id!r} has no image, its download failed"
    return errors.InputDownloadFailed.because(cause or "", where).noting("add it again with the same id and a URL "
                                                                          "that works")


class ImageLoader:
    """Loads request images: decodes base64, fetches URLs SSRF-safely, checks size and format."""

    def __init__(self, fetcher: ImageFetcher, *, max_bytes: int, max_pixels: int) -> None:
        self.fetcher = fetcher
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    def load(self, source: ImageSource, min_side: int | None = None) -> CheckedImage:
        """The checked image; ``min_side`` as in :func:`check_image` (what the model will need). A
        refusal names the field (``inputs[3].data.image.url: ...``): in a batch, which item failed."""
        try:
            data = decode_base64(source.base64) if source.base64 else self.fetcher.fetch(source.url or "")
            return check_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels, min_side=min_side)
        except errors.ApiError as exc:
            raise exc.at(f"{source.field}.{'base64' if source.base64 else 'url'}")  # noqa: B904  (the same error)
