"""Opening image files and bytes safely: one place that turns bad input into a clear error."""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import CelebAModelError

# CelebA images are 178x218; uploads are phone photos. 64 megapixels covers any real photo
# while refusing decompression bombs long before they exhaust memory.
MAX_IMAGE_PIXELS = 64_000_000


class ImageReadError(CelebAModelError, ValueError):
    """An image that cannot be decoded, with the file name and the reason."""


def open_image(
    source: str | Path | bytes,
    name: str | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_side: int | None = None,
    max_area: int | None = None,
) -> Image.Image:
    """Decode an image fully (so truncation is caught here) and return it upright in RGB.

    EXIF orientation is applied; palette, RGBA, grayscale, 16-bit and CMYK images become RGB
    (transparency is composited on white). With ``max_side`` the image is shrunk so its longer side
    fits it; with ``max_area`` so it holds at most that many pixels, keeping its aspect ratio (a
    20000x436 panorama keeps a usable height, where a side limit would leave it 28 px high). A
    JPEG is then decoded at a reduced scale directly (libjpeg's DCT scaling), which makes a
    12-megapixel photo several times cheaper to open. The upright size before shrinking is kept in
    ``image.info["source_size"]``. Any failure raises ``ImageReadError`` naming ``name``.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "uploaded image")
    if isinstance(source, bytes) and len(source) == 0:
        raise ImageReadError(f"{label}: the file is empty")
    fp = io.BytesIO(source) if isinstance(source, bytes) else _open_file(source, label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with fp:
                image = Image.open(fp)
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageReadError(
                        f"{label}: {width}x{height} pixels is over the limit of {max_pixels:,} "
                        "(possible decompression bomb)"
                    )
                if width < 1 or height < 1:
                    raise ImageReadError(f"{label}: the image has no pixels")
                target = _shrunk_size((width, height), max_side, max_area)
                if image.format == "JPEG" and target != (width, height):
                    # The largest 1/2, 1/4 or 1/8 scale that still covers the target size.
                    image.draft(image.mode, target)
                image.load()
    except ImageReadError:
        raise
    except UnidentifiedImageError as err:
        raise ImageReadError(f"{label}: not an image file PIL can read (unknown format or corrupt header)") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageReadError(f"{label}: image too large (possible decompression bomb): {err}") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageReadError(f"{label}: corrupt or truncated image ({err})") from err
    decoded = image.size
    image = to_rgb(ImageOps.exif_transpose(image))
    upright = (height, width) if image.size != decoded else (width, height)  # turned by 90 degrees
    target = _shrunk_size(upright, max_side, max_area)
    if image.size != target:
        image = image.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
    image.info["source_size"] = upright
    return image


def _open_file(path: str | Path, label: str):  # noqa: ANN202 - a binary file object
    """Open a file for reading, turning the usual failures into one clear ``ImageReadError``."""
    try:
        return open(path, "rb")
    except FileNotFoundError as err:
        raise ImageReadError(f"{label}: file not found") from err
    except IsADirectoryError as err:
        raise ImageReadError(f"{label}: is a folder, not an image file") from err
    except PermissionError as err:
        raise ImageReadError(f"{label}: permission denied") from err
    except OSError as err:
        raise ImageReadError(f"{label}: cannot read the file ({err.strerror or err})") from err


def _shrunk_size(size: tuple[int, int], max_side: int | None, max_area: int | None) -> tuple[int, int]:
    """``size`` scaled down (never up), keeping its aspect ratio, to fit ``max_side`` and ``max_area``."""
    width, height = size
    scale = 1.0
    if max_side is not None:
        scale = min(scale, max_side / max(width, height))
    if max_area is not None:
        scale = min(scale, math.sqrt(max_area / (width * height)))
    if scale >= 1.0:
        return size
    # Rounded down (but for float noise), so the result never exceeds max_side or max_area.
    return max(1, math.floor(width * scale + 1e-6)), max(1, math.floor(height * scale + 1e-6))


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparent areas become white, 16-bit is rescaled."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # PIL's plain convert('L') clips 16-bit values at 255; scale to the real range instead.
        import numpy as np

        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        gray = np.clip(values / top * 255.0 + 0.5, 0, 255).astype("uint8")
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
