"""Image checks: good images pass with their facts, every kind of bad one fails as an ApiError."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from visionloop.errors import ApiError, InputInvalid, InputOverLimit, InputUnsupportedFormat
from visionloop.services.images import CheckedImage, check_image, decode_base64, open_rgb
from visionloop.store.blobs import digest_of

LIMITS = {"max_bytes": 1_000_000, "max_pixels": 1_000_000}


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims any size, with a tiny IDAT: a decompression bomb in a few bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [("PNG", "RGBA"), ("JPEG", "RGB"), ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "RGB"), ("WEBP", "RGB")],
)
def test_supported_formats_pass_with_size_format_and_digest(fmt: str, mode: str) -> None:
    data = encode(Image.new(mode, (7, 5)), fmt)
    checked = check_image(data, **LIMITS)
    assert checked == CheckedImage(data=data, digest=digest_of(data), width=7, height=5, format=fmt)


def test_multi_picture_jpeg_is_reported_as_jpeg() -> None:
    data = encode(Image.new("RGB", (4, 4)), "MPO", save_all=True, append_images=[Image.new("RGB", (4, 4))])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert check_image(data, **LIMITS).format == "JPEG"


def test_empty_data_is_invalid() -> None:
    with pytest.raises(InputInvalid, match="empty"):
        check_image(b"", **LIMITS)


def test_bytes_over_limit_are_refused_before_decoding() -> None:
    with pytest.raises(InputOverLimit, match="over the limit of 10 bytes"):
        check_image(b"x" * 11, max_bytes=10, max_pixels=100)


@pytest.mark.parametrize("data", [b"not an image at all", b"\x89PNG\r\n\x1a\n garbage", b"\xff\xd8\xff\xe0 junk"])
def test_garbage_is_invalid(data: bytes) -> None:
    with pytest.raises(InputInvalid, match="image data is corrupt or not an image"):
        check_image(data, **LIMITS)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_is_invalid(fmt: str) -> None:
    noisy = Image.frombytes("RGB", (64, 64), bytes(range(256)) * 48)
    data = encode(noisy, fmt)
    with pytest.raises(InputInvalid, match="corrupt"):
        check_image(data[: len(data) // 2], **LIMITS)


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (20_000, 5_000), (2_000, 1_000)])
def test_decompression_bomb_is_over_limit_without_decoding(width: int, height: int) -> None:
    # 10^10 px trips Pillow's own error, 10^8 px its warning, 2*10^6 px only our limit: all are ours.
    with pytest.raises(InputOverLimit):
        check_image(png_header_only(width, height), **LIMITS)


def test_pixel_limit_is_ours_not_pillows(monkeypatch: pytest.MonkeyPatch) -> None:
    # Between Pillow's warning and error thresholds: Pillow would warn (an error under pytest).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    data = encode(Image.new("RGB", (40, 40)), "PNG")
    assert check_image(data, max_bytes=10_000, max_pixels=10_000).width == 40
    with pytest.raises(InputOverLimit, match="40 x 40 pixels"):
        check_image(data, max_bytes=10_000, max_pixels=1_500)


def test_pixel_limit_message_names_the_size() -> None:
    data = encode(Image.new("L", (40, 30)), "PNG")
    with pytest.raises(InputOverLimit, match="40 x 30 pixels, over the limit of 1000"):
        check_image(data, max_bytes=10_000, max_pixels=1_000)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (encode(Image.new("RGB", (16, 16)), "ICO"), "ICO"),
        (encode(Image.new("RGB", (4, 4)), "PPM"), "PPM"),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n", "PDF"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
    ],
)
def test_unsupported_formats(data: bytes, name: str) -> None:
    with pytest.raises(InputUnsupportedFormat, match=name):
        check_image(data, **LIMITS)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048) | st.binary(max_size=64).map(lambda tail: b"\x89PNG\r\n\x1a\n" + tail))
def test_arbitrary_bytes_return_or_raise_api_error(data: bytes) -> None:
    try:
        checked = check_image(data, max_bytes=1_500, max_pixels=10_000)
    except ApiError:
        return
    assert checked.width * checked.height <= 10_000


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_base64_round_trips_standard_and_urlsafe(data: bytes) -> None:
    standard = base64.b64encode(data).decode()
    urlsafe = base64.urlsafe_b64encode(data).decode()
    assert decode_base64(standard) == data
    assert decode_base64(urlsafe) == data
    assert decode_base64(urlsafe.rstrip("=")) == data
    assert decode_base64(base64.encodebytes(data).decode()) == data  # MIME line breaks


@pytest.mark.parametrize("value", ["a", "abc$", "ab=c", "QQ===", "Q+-A", "é", "Zm9v\x00"])
def test_invalid_base64(value: str) -> None:
    with pytest.raises(InputInvalid, match=": not valid base64"):
        decode_base64(value)


def test_open_rgb_applies_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    image = open_rgb(checked(encode(Image.new("RGB", (40, 20), "red"), "JPEG", exif=exif.tobytes())))
    assert (image.mode, image.size) == ("RGB", (20, 40))


def test_open_rgb_puts_transparency_on_white_and_scales_16_bit() -> None:
    assert open_rgb(checked(encode(Image.new("RGBA", (2, 2)), "PNG"))).getpixel((0, 0)) == (255, 255, 255)
    grey16 = encode(Image.new("I;16", (1, 1), 32896), "PNG")
    assert open_rgb(checked(grey16)).getpixel((0, 0)) == (128, 128, 128)
    # without the decoded pixels (an image from the blob store) the bytes are decoded on demand
    assert open_rgb(CheckedImage(grey16, "", 1, 1, "PNG")).getpixel((0, 0)) == (128, 128, 128)


def checked(data: bytes) -> CheckedImage:
    return check_image(data, max_bytes=10**7, max_pixels=10**7)


def test_open_rgb_maps_garbage_to_api_error() -> None:
    with pytest.raises(InputInvalid):
        open_rgb(CheckedImage(b"garbage", "", 1, 1, "PNG"))


def test_a_large_jpeg_decodes_only_as_large_as_needed_and_keeps_its_size() -> None:
    data = encode(Image.new("RGB", (1600, 1200), (200, 30, 30)), "JPEG", quality=90)
    full = check_image(data, **LIMITS | {"max_pixels": 2_000_000})
    reduced = check_image(data, **LIMITS | {"max_pixels": 2_000_000}, min_side=256)
    assert (full.width, full.height) == (reduced.width, reduced.height) == (1600, 1200)
    assert full.pixels is not None and full.pixels.size == (1600, 1200)
    assert reduced.pixels is not None and reduced.pixels.size == (400, 300)  # 1/4: the smallest >= 256
    assert reduced.digest == full.digest


def test_a_truncated_jpeg_is_refused_also_when_decoded_at_reduced_scale() -> None:
    noisy = Image.effect_noise((1600, 1200), 64).convert("RGB")
    data = encode(noisy, "JPEG", quality=90)
    with pytest.raises(InputInvalid, match="truncated|corrupt"):
        check_image(data[: len(data) // 2], **LIMITS | {"max_bytes": 10_000_000, "max_pixels": 2_000_000}, min_side=256)
