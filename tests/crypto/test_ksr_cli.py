"""The offline CLI, run as a subprocess: exit codes, one-line reasons, replay equality."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import FIXTURES as SHARED_FIXTURES
from tests.tools import asciinema_cat, scriptreplay

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = SHARED_FIXTURES
GUACD_TS = FIXTURES / "guacd-ssh-short.typescript"
GUACD_TM = FIXTURES / "guacd-ssh-short.typescript.timing"
UTIL_TS = FIXTURES / "util-linux-classic.tys"
UTIL_TM = FIXTURES / "util-linux-classic.tm"


def cli(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "keeperpam.cli", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli")
    for kind in ("record", "signer"):
        result = cli("keygen", kind, "--out-private", f"{kind}.pem", "--out-public",
                     f"{kind}.pub", cwd=path)
        assert result.returncode == 0, result.stderr
    return path


def seal(workdir: Path, name: str, *inputs: Path, fmt: str = "typescript") -> Path:
    out = workdir / name
    if not out.exists():
        result = cli("seal", "--input-format", fmt, "--record-pub", "record.pub",
                     "--signer-key", "signer.pem", *inputs, "-o", out, cwd=workdir)
        assert result.returncode == 0, result.stderr
    return out


def test_help_lists_subcommands(workdir) -> None:
    result = cli("--help", cwd=workdir)
    assert result.returncode == 0
    for command in ("verify", "decrypt", "keygen", "seal"):
        assert command in result.stdout


def test_usage_error_is_not_the_tampered_code(workdir) -> None:
    assert cli("verify", cwd=workdir).returncode == 64


def test_keygen_refuses_to_overwrite(workdir) -> None:
    result = cli("keygen", "record", "--out-private", "record.pem", "--out-public", "x.pub",
                 cwd=workdir)
    assert result.returncode == 1
    assert "exists" in result.stderr


@pytest.mark.parametrize(("typescript", "timing"), [(GUACD_TS, GUACD_TM), (UTIL_TS, UTIL_TM)])
def test_decrypt_typescript_replays_like_the_original(workdir, typescript, timing) -> None:
    sealed = seal(workdir, f"sealed-{typescript.stem}", typescript, timing)
    out = workdir / f"out-{typescript.stem}"
    result = cli("decrypt", "--record-key", "record.pem", "--signer-key", "signer.pub",
                 sealed, "--format", "typescript", "-o", out, cwd=workdir)
    assert result.returncode == 0, result.stderr
    replayed = scriptreplay(Path(f"{out}.tm"), Path(f"{out}.tys"))
    assert replayed == scriptreplay(timing, typescript)
    assert b"CANARY" in replayed or b"logout" in replayed


def test_verify_ok_in_any_order(workdir) -> None:
    sealed = seal(workdir, "small-parts", GUACD_TS, GUACD_TM)
    files = sorted(sealed.iterdir(), reverse=True)
    result = cli("verify", "--signer-key", "signer.pub", *files, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok:")


@pytest.fixture(scope="module")
def multi_part(workdir) -> Path:
    """A guac stream of several parts (the guac fixture is larger than the typescripts)."""
    out = workdir / "guac-multi"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = (
        "import sys, pathlib\n"
        "from keeperpam.crypto import keys\n"
        "from keeperpam.crypto.sealer import StreamSealer\n"
        "rec = keys.record_public_key_load(pathlib.Path('record.pub').read_bytes())\n"
        "sig = keys.signer_private_key_load(pathlib.Path('signer.pem').read_bytes())\n"
        "s = StreamSealer(recording='0f8e2b1a-3c4d-4e5f-8a9b-0c1d2e3f4a5b', stream='guac',\n"
        "                 record_public_keys=[rec], signer_key=sig, max_part_bytes=8192)\n"
        "out = pathlib.Path(sys.argv[1]); out.mkdir()\n"
        "data = pathlib.Path(sys.argv[2]).read_bytes()\n"
        "ps = s.add_bytes(data) + s.close()\n"
        "for i, p in enumerate(ps): (out / f'guac-{i:06d}.ksr').write_bytes(p)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(out), str(FIXTURES / "rdp-short.guac")
                    if (FIXTURES / "rdp-short.guac").exists()
                    else str(FIXTURES / "guacd-ssh-short.guac")],
                   cwd=workdir, env=env, check=True, timeout=60)
    assert len(list(out.iterdir())) > 3
    return out


def copy_parts(multi_part: Path, dest: Path, keep) -> Path:
    dest.mkdir()
    for path in sorted(multi_part.iterdir()):
        if keep(path):
            shutil.copy(path, dest / path.name)
    return dest


def test_verify_incomplete(workdir, multi_part, tmp_path) -> None:
    last = sorted(multi_part.iterdir())[-1]
    partial = copy_parts(multi_part, tmp_path / "partial", lambda p: p != last)
    result = cli("verify", "--signer-key", "signer.pub", partial, cwd=workdir)
    assert result.returncode == 3
    assert result.stderr.startswith("incomplete:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_decrypt_incomplete_writes_the_valid_prefix(workdir, multi_part, tmp_path) -> None:
    last = sorted(multi_part.iterdir())[-1]
    partial = copy_parts(multi_part, tmp_path / "partial", lambda p: p != last)
    out = tmp_path / "out.guac"
    result = cli("decrypt", "--record-key", "record.pem", "--signer-key", "signer.pub",
                 partial, "-o", out, cwd=workdir)
    assert result.returncode == 3
    assert result.stderr.startswith("incomplete:")
    original = (FIXTURES / "guacd-ssh-short.guac").read_bytes()
    assert out.stat().st_size > 0
    assert original.startswith(out.read_bytes())


@pytest.mark.parametrize("damage", ["flip", "drop-middle", "duplicate", "unknown-signer"])
def test_verify_tampered(workdir, multi_part, tmp_path, damage) -> None:
    files = sorted(multi_part.iterdir())
    target = copy_parts(multi_part, tmp_path / "t", lambda p: True)
    signer = "signer.pub"
    if damage == "flip":
        path = target / files[2].name
        data = bytearray(path.read_bytes())
        data[-100] ^= 4
        path.write_bytes(bytes(data))
    elif damage == "drop-middle":
        (target / files[2].name).unlink()
    elif damage == "duplicate":
        shutil.copy(files[2], target / "copy.ksr")
    else:
        assert cli("keygen", "signer", "--out-private", tmp_path / "o.pem", "--out-public",
                   tmp_path / "o.pub", cwd=workdir).returncode == 0
        signer = str(tmp_path / "o.pub")
    result = cli("verify", "--signer-key", signer, target, cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("tampered:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_decrypt_with_wrong_record_key(workdir, multi_part, tmp_path) -> None:
    assert cli("keygen", "record", "--out-private", tmp_path / "r.pem", "--out-public",
               tmp_path / "r.pub", cwd=workdir).returncode == 0
    result = cli("decrypt", "--record-key", tmp_path / "r.pem", "--signer-key", "signer.pub",
                 multi_part, "-o", tmp_path / "x", cwd=workdir)
    assert result.returncode == 4
    assert result.stderr.startswith("key:")


def test_decrypt_asciicast_plays_in_asciinema(workdir) -> None:
    sealed = seal(workdir, "sealed-cast", GUACD_TS, GUACD_TM)
    cast = workdir / "out.cast"
    result = cli("decrypt", "--record-key", "record.pem", "--signer-key", "signer.pub",
                 sealed, "--format", "asciicast", "-o", cast, cwd=workdir)
    assert result.returncode == 0, result.stderr
    header = json.loads(cast.read_text().splitlines()[0])
    assert header["version"] == 2
    status, output = asciinema_cat(cast)
    assert status == 0, output[-500:]
    assert b"logout" in output
    assert b"sudo: command not found" in output


def test_seal_asciicast_round_trip(workdir, tmp_path) -> None:
    cast = tmp_path / "in.cast"
    cast.write_text('{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "hello \\u00e9"]\n'
                    '[0.2, "o", "\\r\\nbye\\r\\n"]\n')
    sealed = tmp_path / "sealed"
    assert cli("seal", "--input-format", "asciicast", "--record-pub", "record.pub",
               "--signer-key", "signer.pem", cast, "-o", sealed, cwd=workdir).returncode == 0
    result = cli("decrypt", "--record-key", "record.pem", "--signer-key", "signer.pub",
                 sealed, "--format", "asciicast", cwd=workdir)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()[1:]]
    assert "".join(e[2] for e in events if e[1] == "o") == "hello é\r\nbye\r\n"


def test_seal_guac_and_decrypt_raw(workdir, tmp_path) -> None:
    source = FIXTURES / "guacd-ssh-short.guac"
    sealed = seal(workdir, "sealed-guac", source, fmt="guac")
    out = tmp_path / "out.guac"
    result = cli("decrypt", "--record-key", "record.pem", "--signer-key", "signer.pub",
                 sealed, "-o", out, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == source.read_bytes()


def test_stream_option_picks_one_stream_from_a_mixed_directory(workdir, tmp_path) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for sealed in (seal(workdir, "sealed-guac", FIXTURES / "guacd-ssh-short.guac", fmt="guac"),
                   seal(workdir, "small-parts", GUACD_TS, GUACD_TM)):
        for path in sealed.iterdir():
            shutil.copy(path, mixed / f"{sealed.name}-{path.name}")
    assert cli("verify", "--signer-key", "signer.pub", mixed, cwd=workdir).returncode == 2
    for stream in ("guac", "terminal"):
        result = cli("verify", "--signer-key", "signer.pub", "--stream", stream, mixed,
                     cwd=workdir)
        assert result.returncode == 0, result.stderr
