"""Offline subcommands: verify, decrypt, keygen and seal.

These are the high-assurance path: they run on the user's machine, trust
only the key files named on the command line, and need no server. Every
failure ends with one line on stderr that starts with ``tampered:``,
``incomplete:``, ``key:`` or ``error:`` and the matching exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from keeperpam.cli import (
    EXIT_KEY,
    EXIT_OK,
)
from keeperpam.cli.errors import CommandError, one_line_errors
from keeperpam.crypto import keys, terminal
from keeperpam.crypto.errors import (
    MalformedPart,
    UnexpectedPart,
)
from keeperpam.crypto.parts import (
    NONCE_BYTES,
    SIGNATURE_BYTES,
    STREAMS,
    PartHeader,
    _header_length,
    _header_parse,
    stream_open,
    stream_verify,
)
from keeperpam.crypto.sealer import StreamSealer

__all__ = ["register"]

PART_SUFFIX = ".ksr"


# --- locating and ordering parts ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartRef:
    """Where one part lives on disk, and its (unverified) header, used for ordering."""

    path: Path
    offset: int
    length: int
    header: PartHeader

    def read(self) -> bytes:
        """Read the part's bytes."""
        with self.path.open("rb") as source:
            source.seek(self.offset)
            return source.read(self.length)


def _part_files(paths: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix == PART_SUFFIX and p.is_file())
            if not found:
                raise CommandError(f"error: no *{PART_SUFFIX} files in {path}")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise CommandError(f"error: {path} does not exist")
    return files


def _index(paths: Iterable[str]) -> list[PartRef]:
    """Read only the headers of every part (a file may hold several, concatenated)."""
    refs: list[PartRef] = []
    for path in _part_files(paths):
        size = path.stat().st_size
        with path.open("rb") as source:
            offset = 0
            while offset < size:
                try:
                    length = _header_length(source.read(8))
                    header = _header_parse(source.read(length))
                except MalformedPart as exc:
                    raise type(exc)(f"{path} at byte {offset}: {exc}") from exc
                total = 8 + length + NONCE_BYTES + header.n + SIGNATURE_BYTES
                if offset + total > size:
                    raise MalformedPart(f"{path} at byte {offset}: part is truncated")
                refs.append(PartRef(path, offset, total, header))
                offset += total
                source.seek(offset)
    return refs


def _ordered(paths: Iterable[str], stream: str | None = None) -> tuple[list[PartRef], str, str]:
    """Order parts by seq; return them with the recording and stream named by seq 0.

    ``stream`` picks one stream out of parts of several (e.g. a directory
    holding a recording's terminal and guac parts).
    """
    refs = sorted(_index(paths), key=lambda ref: ref.header.seq)
    if stream is not None:
        refs = [ref for ref in refs if ref.header.stream == stream]
    if not refs:
        raise CommandError("error: no parts given" + (f" for stream {stream}" if stream else ""))
    first = refs[0].header
    if first.seq != 0:
        raise UnexpectedPart(f"no part with seq 0 (lowest is seq {first.seq})")
    for before, after in zip(refs, refs[1:], strict=False):
        if before.header.seq == after.header.seq:
            raise UnexpectedPart(
                f"two parts claim seq {after.header.seq} ({before.path}, {after.path})"
            )
    return refs, first.recording, first.stream


def _read_all(refs: Iterable[PartRef]) -> Iterator[bytes]:
    for ref in refs:
        yield ref.read()


def _signers(files: list[str]) -> dict[str, object]:
    if not files:
        raise CommandError("error: at least one --signer-key is needed", EXIT_KEY)
    signers = {}
    for name in files:
        key = keys.signer_public_key_load(Path(name).read_bytes())
        signers[keys.signer_key_id(key)] = key
    return signers


# --- verify ---------------------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    refs, recording, stream = _ordered(args.parts, args.stream)
    signers = _signers(args.signer_key)
    summary = stream_verify(_read_all(refs), signers=signers, recording=recording,
                            stream=stream)  # type: ignore[arg-type]
    print(f"ok: recording {recording} stream {stream}: {summary.parts} parts, complete, "
          f"{summary.t1 / 1000:.3f} s")
    return EXIT_OK


# --- decrypt ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _output(path: str | None, mode: str) -> Iterator[BinaryIO | TextIO]:
    if path is None or path == "-":
        yield sys.stdout.buffer if "b" in mode else sys.stdout
        return
    with open(path, mode) as handle:
        yield handle


def _decrypt(args: argparse.Namespace) -> int:
    refs, recording, stream = _ordered(args.parts, args.stream)
    signers = _signers(args.signer_key)
    record_key = keys.record_private_key_load(Path(args.record_key).read_bytes())
    opened = stream_open(_read_all(refs), record_private_key=record_key,
                         signers=signers, recording=recording,  # type: ignore[arg-type]
                         stream=stream)
    if args.format != "raw" and stream != "terminal":
        raise CommandError(f"error: --format {args.format} needs a terminal stream, not {stream}")
    if args.format == "raw":
        with _output(args.output, "wb") as out:
            # Reading from seq 0, keyframes repeat what came before: write the bodies.
            for part in opened:
                out.write(part.body)  # type: ignore[arg-type]
    elif args.format == "asciicast":
        with _output(args.output, "w") as out:
            terminal.records_to_asciicast(terminal.stream_records(opened), out)  # type: ignore[arg-type]
    else:
        if not args.output or args.output == "-":
            raise CommandError("error: --format typescript needs -o OUT (writes OUT.tys, OUT.tm)")
        base = args.output.removesuffix(".tys")
        with open(f"{base}.tys", "wb") as tys, open(f"{base}.tm", "w") as tm:
            terminal.records_to_typescript(
                terminal.stream_records(opened), tys, tm,
                header_line=f"Script started [keeperpam recording {recording}]",
            )
    return EXIT_OK


# --- keygen ------------------------------------------------------------------------------------


def _write_new(path: str, data: bytes, *, private: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(path, flags, 0o600 if private else 0o644)
    except FileExistsError as exc:
        raise CommandError(f"error: {path} exists; not overwriting a key file") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _keygen(args: argparse.Namespace) -> int:
    if args.kind == "record":
        key = keys.record_key_generate()
        key_id = keys.record_key_id(key)
    else:
        key = keys.signer_key_generate()  # type: ignore[assignment]
        key_id = keys.signer_key_id(key)  # type: ignore[arg-type]
    _write_new(args.out_private, keys.private_key_pem(key), private=True)
    _write_new(args.out_public, keys.public_key_pem(key.public_key()), private=False)
    print(f"{args.kind} key id {key_id}")
    return EXIT_OK


# --- seal ---------------------------------------------------------------------------


def _parse_size(text: str) -> tuple[int, int]:
    cols, _, rows = text.partition("x")
    try:
        return int(cols), int(rows)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("size must look like 80x24") from exc


def _timing_path(args: argparse.Namespace) -> Path:
    if args.timing:
        return Path(args.timing)
    source = Path(args.input)
    candidates = [Path(f"{source}.timing"), source.with_suffix(".tm"),
                  source.with_suffix(".timing")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise CommandError("error: typescript input needs a TIMING file")


def _seal(args: argparse.Namespace) -> int:
    recording = str(uuid.UUID(args.recording)) if args.recording else str(uuid.uuid4())
    record_keys = [keys.record_public_key_load(Path(name).read_bytes())
                   for name in args.record_pub]
    signer = keys.signer_private_key_load(Path(args.signer_key).read_bytes())
    stream = "guac" if args.input_format == "guac" else "terminal"
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.glob(f"{stream}-*{PART_SUFFIX}")):
        raise CommandError(f"error: {out_dir} already holds {stream} parts")
    sealer = StreamSealer(recording=recording, stream=stream, record_public_keys=record_keys,
                          signer_key=signer, terminal_size=args.size or terminal.DEFAULT_SIZE)

    # Each part is written as soon as it is sealed: memory stays flat.
    with open(args.input, "rb") as source:
        if args.input_format == "guac":
            while chunk := source.read(65_536):
                _write_each(sealer.add_bytes(chunk), out_dir, stream, sealer)
        else:
            if args.input_format == "asciicast":
                text = open(args.input, encoding="utf-8")  # noqa: SIM115 - closed by `with text`
                records = terminal.records_from_asciicast(text)
            else:
                text = _timing_path(args).open(encoding="ascii")
                records = terminal.records_from_typescript(source, text, size=args.size)
            with text:
                for record in records:
                    _write_each(sealer.add_record(record), out_dir, stream, sealer)
        _write_each(sealer.close(), out_dir, stream, sealer)
    print(f"sealed recording {recording} stream {stream}: {sealer.seq} parts in {out_dir}")
    return EXIT_OK


def _write_each(parts: list[bytes], out_dir: Path, stream: str, sealer: StreamSealer) -> None:
    """Write parts just returned by the sealer (whose ``seq`` is now past them)."""
    first_seq = sealer.seq - len(parts)
    for offset, part in enumerate(parts):
        (out_dir / f"{stream}-{first_seq + offset:06d}{PART_SUFFIX}").write_bytes(part)


# --- registration ---------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the offline subcommands to the CLI."""
    verify = subparsers.add_parser(
        "verify", help="check parts: structure, signatures, chain and completeness",
        description="Verify a stream's parts (files in any order, or directories of *.ksr). "
                    "Exit 0 if valid and complete, 2 if tampered, 3 if incomplete.",
    )
    verify.add_argument("parts", nargs="+", metavar="PART", help="part file or directory")
    verify.add_argument("--signer-key", action="append", default=[], metavar="FILE",
                        help="trusted signer key (PEM, DER or raw 32 bytes; repeatable)")
    verify.add_argument("--stream", choices=sorted(STREAMS),
                        help="only this stream's parts (default: all parts, one stream)")
    verify.set_defaults(handler=one_line_errors(_verify))

    decrypt = subparsers.add_parser(
        "decrypt", help="verify and decrypt a stream",
        description="Verify and decrypt a stream. An incomplete stream is written up to its "
                    "last valid part and exits 3.",
    )
    decrypt.add_argument("parts", nargs="+", metavar="PART", help="part file or directory")
    decrypt.add_argument("--record-key", required=True, metavar="FILE",
                         help="record private key (PEM or DER PKCS#8)")
    decrypt.add_argument("--signer-key", action="append", default=[], metavar="FILE",
                         help="trusted signer key (repeatable)")
    decrypt.add_argument("-o", "--output", metavar="OUT",
                         help="output file (default stdout); for typescript OUT.tys + OUT.tm")
    decrypt.add_argument("--format", choices=("raw", "typescript", "asciicast"), default="raw",
                         help="raw stream bytes (default), a scriptreplay pair, or asciicast v2")
    decrypt.add_argument("--stream", choices=sorted(STREAMS),
                         help="only this stream's parts (default: all parts, one stream)")
    decrypt.set_defaults(handler=one_line_errors(_decrypt))

    keygen = subparsers.add_parser("keygen", help="generate a record or signer key pair (PEM)")
    keygen.add_argument("kind", choices=("record", "signer"),
                        help="record: P-256 key pair; signer: Ed25519 key pair")
    keygen.add_argument("--out-private", required=True, metavar="FILE")
    keygen.add_argument("--out-public", required=True, metavar="FILE")
    keygen.set_defaults(handler=one_line_errors(_keygen))

    seal = subparsers.add_parser(
        "seal", help="seal a recording file into a directory of parts",
        description="Seal a typescript (+ timing), asciicast or guac recording into "
                    "DIR/<stream>-NNNNNN.ksr parts, streaming.",
    )
    seal.add_argument("input", metavar="INPUT")
    seal.add_argument("timing", nargs="?", metavar="TIMING",
                      help="timing file for typescript input (default INPUT.timing)")
    seal.add_argument("--input-format", required=True,
                      choices=("typescript", "asciicast", "guac"))
    seal.add_argument("--record-pub", action="append", required=True, metavar="FILE",
                      help="record public key to wrap data keys to (repeatable)")
    seal.add_argument("--signer-key", required=True, metavar="FILE",
                      help="Ed25519 private signing key")
    seal.add_argument("-o", "--output", required=True, metavar="DIR")
    seal.add_argument("--recording", metavar="UUID", help="recording id (default: random)")
    seal.add_argument("--size", type=_parse_size, metavar="COLSxROWS",
                      help="terminal size when the input does not say (default 80x24)")
    seal.set_defaults(handler=one_line_errors(_seal))
