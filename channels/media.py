"""Photos a person sends while writing a report: downloaded by the channel module, then
re-encoded from their pixels alone, so EXIF (GPS position, phone model, time) and every
other metadata block are gone before anything is stored. Other media (audio, video,
documents) carry metadata we cannot strip reliably, so they are not kept.

An image is attacker-supplied input to a C codec, so the gateway never decodes one itself:
- only JPEG, PNG and WebP, recognised by their magic bytes before any parser sees them,
  and opened with only that one Pillow plugin;
- the byte cap and the pixel cap (read from the header, which Pillow parses lazily) are
  checked before a single pixel is decoded;
- decoding runs in a fresh process per photo, started with an empty environment and
  without our packages on its path (no key, token, database address or settings in its
  memory), under an address-space, CPU and file-size limit and a wall-clock timeout. A
  codec crash, hang or bomb kills that process only; the photo is refused politely and
  the next one gets a new process (a pooled worker would let one hostile photo watch the
  next person's).

This file is also the worker's program: `python -I channels/media.py MEMORY CPU` reads the
photo on stdin and writes the clean JPEG on stdout (exit 0), or exits 2 when it refuses.
"""

from __future__ import annotations

import asyncio
import io
import json
import resource
import sys
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path

KEPT_TYPES = {"image/jpeg", "image/png", "image/webp"}
# WhatsApp's "HD" photos are at most 4096 x 3072 (12.6 MP) and Telegram's at most 2560 px a
# side, and a 12 MP phone photo is what cameras save by default: 16 MP (4096 x 4096) keeps
# every real photo with margin, while a 16 MP RGBA frame is 64 MB, not gigabytes.
MAX_PIXELS = 16_000_000
MAX_DOWNLOAD_BYTES = 5 * 1024 * 1024  # Twilio's MMS limit; channel modules stop downloading past it
MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
)
REFUSED_EXIT = 2
WORKER = Path(__file__).resolve()
MAX_WORKERS = 2  # at once: a burst of photos queues instead of exhausting memory
SLOT_WAIT_SECONDS = 5.0  # past this the photo is refused: the webhook must still answer in time
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class WorkerLimits:
    """What one decoding process may use; past any of it, it dies and the photo is refused."""

    timeout_seconds: float = 8.0  # wall clock, start-up included (a 12 MP photo takes about 1 s)
    memory_bytes: int = 768 * 1024 * 1024  # address space; a 16 MP WebP needs about 384 MB, a JPEG 256
    cpu_seconds: int = 6


DEFAULT_LIMITS = WorkerLimits()


def is_photo(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() in KEPT_TYPES


def sniff(content: bytes) -> str | None:
    """JPEG, PNG or WEBP by the file's own first bytes (never its name or declared type)."""
    for magic, kind in MAGIC:
        if content.startswith(magic):
            return kind
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "WEBP"
    return None


def without_metadata(content: bytes) -> bytes | None:
    """The photo as a fresh JPEG built from its pixels only; None when it is not a JPEG, PNG
    or WebP within the caps. Pure (no settings, no I/O): this is what the worker runs."""
    from PIL import Image, UnidentifiedImageError  # only here: the gateway itself never loads a codec

    kind = sniff(content)
    if kind is None or len(content) > MAX_DOWNLOAD_BYTES:
        return None
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own bomb check, at the same cap
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content), formats=[kind]) as image:
                if image.format not in (kind, "MPO") or image.width * image.height > MAX_PIXELS:
                    return None  # MPO: a camera's multi-picture JPEG, read by the JPEG plugin
                image.load()
                pixels = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError, Warning):
        return None
    clean = Image.new("RGB", pixels.size)
    clean.paste(pixels)
    out = io.BytesIO()
    clean.save(out, format="JPEG", quality=85)  # no exif=, no icc_profile=: nothing but pixels
    return out.getvalue()


async def clean_photo(content: bytes, limits: WorkerLimits = DEFAULT_LIMITS) -> bytes | None:
    """The photo without metadata, decoded in a separate keyless process; None (refused)
    when it is not a JPEG, PNG or WebP under the byte cap, or the worker fails or dies."""
    if sniff(content) is None or len(content) > MAX_DOWNLOAD_BYTES:
        return None  # refused before any process or parser sees it
    slot = _slots.setdefault(asyncio.get_running_loop(), asyncio.Semaphore(MAX_WORKERS))
    try:
        await asyncio.wait_for(slot.acquire(), SLOT_WAIT_SECONDS)
    except TimeoutError:
        return None
    try:
        clean = await run_worker(content, limits)
    finally:
        slot.release()
    return clean if clean and sniff(clean) == "JPEG" else None


async def run_worker(stdin: bytes, limits: WorkerLimits, *args: str) -> bytes | None:
    """Run this file as the worker program: isolated mode (-I: no PYTHON* variables, no user
    site, no script directory on the path) and an empty environment. Its output when it
    exited 0; None when it refused, crashed, or was killed at the timeout."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        str(WORKER),
        str(limits.memory_bytes),
        str(limits.cpu_seconds),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,  # a traceback could quote the photo's bytes
        env={},
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(stdin), limits.timeout_seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        return None
    return output if process.returncode == 0 else None


def limit_this_process(memory_bytes: int, cpu_seconds: int) -> None:
    """Hard limits, set before the photo is read: a bomb or a runaway codec is killed."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # it writes no file


def describe_this_process() -> bytes:
    """For the test that proves the worker is another process holding nothing of ours."""
    import os

    import PIL.Image  # noqa: F401  what decoding loads

    return json.dumps(
        {
            "pid": os.getpid(),
            "environ": sorted(os.environ),
            "modules": sorted(sys.modules),
            "memory_limit": resource.getrlimit(resource.RLIMIT_AS)[0],
        }
    ).encode()


def worker_main(argv: list[str]) -> int:
    memory_bytes, cpu_seconds, *rest = argv
    limit_this_process(int(memory_bytes), int(cpu_seconds))
    if rest == ["--describe"]:
        sys.stdout.buffer.write(describe_this_process())
        return 0
    clean = without_metadata(sys.stdin.buffer.read(MAX_DOWNLOAD_BYTES + 1))
    if clean is None:
        return REFUSED_EXIT
    sys.stdout.buffer.write(clean)
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
