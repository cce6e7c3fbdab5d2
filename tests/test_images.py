"""Opening images: every odd but valid file becomes upright RGB, every bad one a clear error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from celeba_model.data.images import ImageReadError, open_image


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "make",
    [
        lambda: _encode(Image.new("RGBA", (20, 30), (255, 0, 0, 128)), "PNG"),
        lambda: _encode(Image.new("P", (20, 30), 3), "PNG"),
        lambda: _encode(Image.new("L", (20, 30), 90), "JPEG"),
        lambda: _encode(Image.new("CMYK", (20, 30), (0, 255, 255, 0)), "JPEG"),
        lambda: _encode(Image.fromarray(np.full((30, 20), 40000, dtype=np.uint16)), "PNG"),
        lambda: _encode(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"),
        lambda: _encode(Image.new("RGB", (20, 30), (0, 0, 255)), "WEBP"),
    ],
    ids=["rgba", "palette", "gray", "cmyk", "16bit", "1x1", "webp"],
)
def test_unusual_modes_become_rgb(make):
    image = open_image(make())
    assert image.mode == "RGB" and image.size in {(20, 30), (1, 1)}


def test_sixteen_bit_png_keeps_its_brightness():
    data = _encode(Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16)), "PNG")
    assert 120 <= np.asarray(open_image(data))[0, 0, 0] <= 135


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = _encode(Image.new("RGB", (40, 20), (200, 10, 10)), "JPEG", exif=exif)
    assert open_image(data).size == (20, 40)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"this is a text file, not a picture", "not an image file"),
        (_encode(Image.new("RGB", (64, 64), (9, 9, 9)), "JPEG")[:200], "corrupt or truncated"),
    ],
    ids=["empty", "text", "truncated"],
)
def test_bad_files_raise_a_clear_error(data, message):
    with pytest.raises(ImageReadError, match=message):
        open_image(data, name="upload.jpg")


def test_png_with_a_broken_crc_is_refused():
    data = bytearray(_encode(Image.new("RGB", (16, 16), (1, 2, 3)), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 6] ^= 0xFF
    with pytest.raises(ImageReadError, match="upload.png"):
        open_image(bytes(data), name="upload.png")


def test_decompression_bomb_is_refused_before_decoding():
    data = _encode(Image.new("1", (12000, 12000)), "PNG")  # tiny file, 144 megapixels
    with pytest.raises(ImageReadError, match="over the limit|decompression bomb"):
        open_image(data)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ImageReadError, match="file not found"):
        open_image(tmp_path / "nope.jpg")


def test_large_photo_is_shrunk_to_max_side_and_stays_upright():
    # A 12-megapixel phone photo stored sideways (4032x3024) with the EXIF tag to view it upright.
    pixels = np.zeros((3024, 4032, 3), dtype=np.uint8)
    pixels[:, :2016] = (200, 30, 30)  # the left half of the stored image is red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display: stored left becomes displayed top
    data = _encode(Image.fromarray(pixels), "JPEG", quality=90, exif=exif)
    image = open_image(data, max_side=1280)
    assert image.size == (960, 1280)  # portrait, as displayed
    top, bottom = np.asarray(image)[:600].mean(axis=(0, 1)), np.asarray(image)[700:].mean(axis=(0, 1))
    assert top[0] > 150 and bottom[0] < 50
    assert open_image(data).size == (3024, 4032)  # without max_side: full size
    small = _encode(Image.new("RGB", (40, 20), (1, 2, 3)), "PNG")
    assert open_image(small, max_side=1280).size == (40, 20)  # never enlarged
