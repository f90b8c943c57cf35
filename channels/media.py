"""Photos a person sends while writing a report: downloaded by the channel module, then
re-encoded from their pixels alone, so EXIF (GPS position, phone model, time) and every
other metadata block are gone before anything is stored. Other media (audio, video,
documents) carry metadata we cannot strip reliably, so they are not kept."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

KEPT_TYPES = {"image/jpeg", "image/png", "image/webp"}
MAX_PIXELS = 40_000_000  # a larger "photo" is a decompression bomb, not evidence
MAX_DOWNLOAD_BYTES = 5 * 1024 * 1024


def is_photo(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() in KEPT_TYPES


def without_metadata(content: bytes) -> bytes | None:
    """The photo as a fresh JPEG built from its pixels only; None when it is not a readable
    image within the size limits."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as image:
                if image.width * image.height > MAX_PIXELS:
                    return None
                image.load()
                pixels = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None
    clean = Image.new("RGB", pixels.size)
    clean.paste(pixels)
    out = io.BytesIO()
    clean.save(out, format="JPEG", quality=85)  # no exif=, no icc_profile=: nothing but pixels
    return out.getvalue()
