"""Staged plaintext (gateway trust zone): the chunk files of tus uploads.

Each accepted PATCH body becomes one file ``<STAGING_DIR>/<session>/<upload>/<offset>``
(16 digits), written to a temporary name, fsynced and renamed *before* the
upload's offset advances in the database, so an accepted byte is never lost.
A crash between the rename and the commit leaves a file at the old offset,
which the retried PATCH replaces. Chunks wholly before ``upload.consumed``
are deleted once their bytes are sealed, so staging stays small however long
the recording is. Terminal screens (keyframes to resume a sealer) and the
typescript being packaged live here too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

READ_BYTES = 1 << 20


def session_dir(session_id) -> Path:
    return Path(settings.STAGING_DIR) / str(session_id)


def upload_dir(upload) -> Path:
    return session_dir(upload.session_id) / str(upload.id)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def chunk_write(upload, offset: int, body, *, limit: int) -> int:
    """Stream ``body`` (a file-like object) into a chunk at ``offset``; return its length.

    Reads at most ``limit`` bytes; the chunk is durable (fsynced and renamed)
    when this returns. Raises ``OSError`` (e.g. a dropped connection) with
    nothing visible.
    """
    directory = upload_dir(upload)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = directory / f"{offset:016d}"
    tmp = directory / f".{offset:016d}.{os.getpid()}.tmp"
    written = 0
    try:
        with open(tmp, "wb") as out:
            while written < limit:
                block = body.read(min(READ_BYTES, limit - written))
                if not block:
                    break
                out.write(block)
                written += len(block)
            out.flush()
            os.fsync(out.fileno())
        if written:
            os.replace(tmp, final)
            _fsync_dir(directory)
        else:
            tmp.unlink()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return written


def _chunks(upload) -> list[tuple[int, Path]]:
    directory = upload_dir(upload)
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        if entry.name.isdigit():
            found.append((int(entry.name), entry))
    return sorted(found)


def read(upload, start: int, end: int) -> Iterator[bytes]:
    """Yield the staged bytes ``[start, end)`` of ``upload`` in blocks of at most 1 MiB."""
    position = start
    for chunk_offset, path in _chunks(upload):
        if position >= end:
            return
        size = path.stat().st_size
        if chunk_offset + size <= position or chunk_offset >= end:
            continue
        if chunk_offset > position:
            raise OSError(f"staging of upload {upload.id} has a gap at {position}")
        with open(path, "rb") as handle:
            handle.seek(position - chunk_offset)
            while position < min(end, chunk_offset + size):
                block = handle.read(min(READ_BYTES, end - position))
                if not block:
                    break
                position += len(block)
                yield block
    if position < end:
        raise OSError(f"staging of upload {upload.id} ends at {position}, expected {end}")


def discard_before(upload, consumed: int) -> None:
    """Delete chunk files whose bytes all lie before ``consumed`` (already sealed)."""
    for chunk_offset, path in _chunks(upload):
        if chunk_offset + path.stat().st_size <= consumed:
            path.unlink(missing_ok=True)


def purge_session(session_id) -> None:
    """Delete everything staged for a session."""
    shutil.rmtree(session_dir(session_id), ignore_errors=True)


def private_file(session_id, name: str) -> Path:
    """A path for the sealer's own staged files (screens, typescript being packaged)."""
    directory = session_dir(session_id) / "sealer"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory / name


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
