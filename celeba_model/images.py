"""Opening image files and bytes safely: one place that turns bad input into a clear error."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import CelebAModelError

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
) -> Image.Image:
    """Decode an image fully (so truncation is caught here) and return it upright in RGB.

    EXIF orientation is applied; palette, RGBA, grayscale, 16-bit and CMYK images become RGB
    (transparency is composited on white). With ``max_side`` the image is shrunk to fit it, and a
    JPEG is decoded at a reduced scale directly (libjpeg's DCT scaling), which makes a 12-megapixel
    photo several times cheaper to open. Any failure raises ``ImageReadError`` naming ``name``.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "uploaded image")
    if isinstance(source, bytes) and len(source) == 0:
        raise ImageReadError(f"{label}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            fp = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
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
                if max_side is not None and image.format == "JPEG" and max(width, height) > max_side:
                    # The largest 1/2, 1/4 or 1/8 scale that still covers max_side on the short side.
                    image.draft(image.mode, (max_side, max_side))
                image.load()
    except ImageReadError:
        raise
    except FileNotFoundError as err:
        raise ImageReadError(f"{label}: file not found") from err
    except UnidentifiedImageError as err:
        raise ImageReadError(f"{label}: not an image file PIL can read (unknown format or corrupt header)") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageReadError(f"{label}: image too large (possible decompression bomb): {err}") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageReadError(f"{label}: corrupt or truncated image ({err})") from err
    image = to_rgb(ImageOps.exif_transpose(image))
    if max_side is not None and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return image


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
