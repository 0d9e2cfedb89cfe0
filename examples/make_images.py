"""Cut the example photos in examples/images from scikit-image's bundled sample photos.

Run from the repository root (needs the test extra): ``.venv/bin/python -m examples.make_images``.
The photos are CC0 or public domain (see examples/README.md); the crops, flips and colour changes
make varied uploads of a few scenes, enough for the README's loop to train on.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import scene, scene_variants

OUT = Path(__file__).resolve().parent / "images"
# (file stem, scikit-image photo, how many, seed)
SETS = (("cat", "chelsea", 10, 1), ("cup", "coffee", 4, 2), ("rocket", "rocket", 3, 3),
        ("astronaut", "astronaut", 3, 4))


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for stem, photo, n, seed in SETS:
        for i, data in enumerate(scene_variants(scene(photo), n, seed, quality=80), 1):
            (OUT / f"{stem}-{i:02d}.jpg").write_bytes(data)
    (OUT.parent / "new-cat.jpg").write_bytes(scene_variants(scene("chelsea"), 1, 99, quality=80)[0])


if __name__ == "__main__":
    main()
