"""Real photos for predict and search through the clients: scikit-image's bundled sample images,
encoded as JPEG once per session in the pytest process (the client venvs do not have
scikit-image; the scripts get file paths and, for URL inputs, loopback URLs of the image host).

- ``cat``: ``skimage.data.chelsea()``, a tabby cat (the general model says cat / Egyptian Mau /
  tabby cat / tiger cat)
- ``face``: ``skimage.data.astronaut()``, one face (the face model finds one region)
- ``coffee``: ``skimage.data.coffee()``, a cup of coffee (no cat, no face): a distractor for search
- ``rocket``: ``skimage.data.rocket()``, used by one run only (copies of it tie in visual search)
"""

from __future__ import annotations

import base64
import dataclasses
import io
from pathlib import Path

SOURCES = {"cat": "chelsea", "face": "astronaut", "coffee": "coffee", "rocket": "rocket"}

# Names the general model may give the cat photo among its top concepts.
CAT_NAMES = {"cat", "tabby cat", "tiger cat", "Egyptian Mau", "domestic cat", "house cat"}


@dataclasses.dataclass(frozen=True)
class Photo:
    name: str
    path: Path
    data: bytes

    @property
    def b64(self) -> str:
        return base64.b64encode(self.data).decode()


def encode(source: str, image_format: str = "JPEG") -> bytes:
    """``skimage.data.<source>()`` as RGB in ``image_format`` (a PIL format name); raises
    ImportError without scikit-image."""
    import skimage.data
    from PIL import Image

    buf = io.BytesIO()
    options = {"quality": 90} if image_format == "JPEG" else {}
    Image.fromarray(getattr(skimage.data, source)()).convert("RGB").save(buf, image_format, **options)
    return buf.getvalue()


def make_photos(folder: Path) -> dict[str, Photo]:
    """Write each sample as ``<folder>/<name>.jpg``; raises ImportError without scikit-image."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, source in SOURCES.items():
        data = encode(source)
        path = folder / f"{name}.jpg"
        path.write_bytes(data)
        out[name] = Photo(name, path, data)
    return out
