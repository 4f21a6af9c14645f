"""Content-addressed file storage for attachments (SHA-256 named, type sniffed, size-limited)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import filetype

from api.config import get_settings


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    content_type: str
    path: str  # relative to the storage root


def sniff_content_type(data: bytes, declared: str | None) -> str:
    """The type the bytes say they are; the declared one only when the bytes don't tell."""
    kind = filetype.guess(data[:8192])
    if kind is not None:
        return str(kind.mime)
    return (declared or "application/octet-stream").split(";")[0].strip().lower()


def check_size(size: int) -> str | None:
    """The refusal reason for an oversized file, or None."""
    limit = get_settings().max_attachment_bytes
    if size > limit:
        return f"arquivo de {size} bytes excede o limite de {limit} bytes"
    return None


def store_blob(data: bytes, declared_type: str | None = None) -> StoredBlob:
    """Write the bytes once under their hash (atomic rename); the same file is stored once."""
    return store_blob_at(get_settings().storage_dir, data, declared_type)


def store_blob_at(
    root: Path, data: bytes, declared_type: str | None = None, *, sniff: bool = True
) -> StoredBlob:
    """`store_blob` under a root given by the caller (a worker process, which does not share the
    caller's settings); `sniff=False` keeps the declared type as it is (a raw mail is
    message/rfc822 whatever its first bytes look like)."""
    digest = hashlib.sha256(data).hexdigest()
    relative = blob_path(digest)
    target = root / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    content_type = (
        sniff_content_type(data, declared_type)
        if sniff
        else (declared_type or "application/octet-stream")
    )
    return StoredBlob(digest, len(data), content_type, relative)


def read_blob(relative: str) -> bytes:
    root = get_settings().storage_dir.resolve()
    path = (root / relative).resolve()
    if root not in path.parents:
        raise ValueError("path outside storage")
    return path.read_bytes()


def blob_path(sha256: str) -> str:
    """The relative path a blob with this hash is stored under."""
    return str(Path(sha256[:2]) / sha256[2:4] / sha256)


def get_blob(sha256: str) -> bytes | None:
    """The stored bytes of a blob, or None when no such blob exists."""
    try:
        return read_blob(blob_path(sha256))
    except (FileNotFoundError, ValueError):
        return None
