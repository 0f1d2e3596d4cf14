"""Sealing throughput of StreamSealer against raw AES-256-GCM + SHA-256.

Usage: python bench/seal_throughput.py [--mb 256]

Generates synthetic terminal output (shell-like lines, some coloured), then
times, in the same run and over the same bytes:

1. ``StreamSealer`` on a ``terminal`` stream: record framing, cutting,
   keyframes from the terminal emulator, HPKE wrap, AES-GCM and Ed25519 per
   part — the real sealing path;
2. ``StreamSealer`` on an ``activity`` stream: the same sealing without the
   terminal emulation, to show what the cryptography itself costs;
3. the baseline: AES-256-GCM over 1 MiB chunks plus SHA-256 of the output.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keeperpam.crypto import keys  # noqa: E402
from keeperpam.crypto.sealer import StreamSealer  # noqa: E402
from keeperpam.crypto.terminal import Record, RecordType  # noqa: E402

RECORDING = "00000000-0000-4000-8000-000000000000"
CHUNK = 4096  # bytes per output record, like a pty read


def synthetic_output(total: int, seed: int = 1) -> bytes:
    """Shell-like output: ls/log lines with an occasional SGR colour."""
    rng = random.Random(seed)
    words = [b"drwxr-xr-x", b"root", b"4096", b"Nov", b"26", b"09:14", b"config.yaml",
             b"INFO", b"request", b"completed", b"in", b"12ms", b"GET", b"/api/v1/records",
             b"\x1b[01;34mbin\x1b[0m", b"\x1b[32mOK\x1b[0m", b"user@host:~$"]
    lines = [b" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))) + b"\r\n"
             for _ in range(4096)]
    block = b"".join(lines)
    repeat = total // len(block) + 1
    return (block * repeat)[:total]


def records(data: bytes) -> Iterator[Record]:
    for index, start in enumerate(range(0, len(data), CHUNK)):
        yield Record(RecordType.OUTPUT, index * 5, data[start : start + CHUNK])


def time_sealer(data: bytes, stream: str) -> tuple[float, int]:
    record_key, signer = keys.record_key_generate(), keys.signer_key_generate()
    sealer = StreamSealer(recording=RECORDING, stream=stream,
                          record_public_keys=[record_key.public_key()], signer_key=signer)
    count = 0
    start = time.perf_counter()
    if stream == "terminal":
        for _part in sealer.add_records(records(data)):
            count += 1
    else:
        for offset in range(0, len(data), CHUNK):
            count += len(sealer.add_bytes(data[offset : offset + CHUNK]))
    count += len(sealer.close())
    return time.perf_counter() - start, count


def time_baseline(data: bytes) -> float:
    aead = AESGCM(os.urandom(32))
    digest = hashlib.sha256()
    start = time.perf_counter()
    view = memoryview(data)
    for offset in range(0, len(data), 1_048_576):
        sealed = aead.encrypt(os.urandom(12), view[offset : offset + 1_048_576], None)
        digest.update(sealed)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256, help="MiB of synthetic data (256)")
    args = parser.parse_args()
    data = synthetic_output(args.mb * 1_048_576)
    megabytes = len(data) / 1e6

    baseline = time_baseline(data)
    sealing, sealed_parts = time_sealer(data, "activity")
    terminal, terminal_parts = time_sealer(data, "terminal")
    print(f"data: {args.mb} MiB synthetic terminal output")
    print(f"baseline AES-256-GCM + SHA-256:         {megabytes / baseline:9.1f} MB/s")
    print(f"StreamSealer activity (crypto only):    {megabytes / sealing:9.1f} MB/s "
          f"({sealed_parts} parts, {baseline / sealing:.2f}x baseline speed)")
    print(f"StreamSealer terminal (with keyframes): {megabytes / terminal:9.1f} MB/s "
          f"({terminal_parts} parts, {baseline / terminal:.3f}x baseline speed)")
    print(f"ratio terminal sealer / baseline time:  {terminal / baseline:9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
