"""KSR1 interop between keeperpam.crypto (Python) and ksr1 (Chromium, WebCrypto).

Every test moves real bytes across the boundary in both directions: what
one side seals, signs, protects or wraps, the other opens, and for tampered
input both sides must refuse with the same error class.
"""

from __future__ import annotations

import json
import unicodedata
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keeperpam.crypto import errors as pyerrors
from keeperpam.crypto.keys import (
    b64u_decode,
    b64u_encode,
    record_key_generate,
    record_key_id,
    record_key_share_unwrap,
    record_key_share_wrap,
    signer_key_generate,
    signer_key_id,
    user_key_protect,
    user_key_unlock,
)
from keeperpam.crypto.parts import part_digest, part_open, part_seal, stream_open
from keeperpam.crypto.terminal import Record, RecordType, records_decode, records_encode

pytestmark = pytest.mark.browser

VECTORS = Path(__file__).resolve().parents[1] / "crypto" / "vectors"
TEST_ITERATIONS = 1000  # PBKDF2; real keys use ≥ 1,000,000
PASSPHRASE_NFC = unicodedata.normalize("NFC", "Crème brûlée ☕ Ångström")
PASSPHRASE_NFD = unicodedata.normalize("NFD", PASSPHRASE_NFC)

# Runs `body` in the page with `k` = the ksr1 module and `a` = the argument.
# Errors come back as {error, tampered} instead of exceptions, so a test can
# assert both the class and that no plaintext came with it.
JS_WRAPPER = """async (a) => {
  const k = window.ksr1;
  const enc = k.b64uEncode, dec = k.b64uDecode;
  try {
    %s
  } catch (e) {
    if (!(e instanceof k.KsrError)) throw e;
    return {error: e.name, tampered: e.tampered, parts: e.parts, message: e.message};
  }
}"""


def js(page, body: str, arg=None):
    """Evaluate an async JS body in the ksr1 page and return its JSON result."""
    return page.evaluate(JS_WRAPPER % body, arg)


def spki(key: ec.EllipticCurvePublicKey) -> str:
    return b64u_encode(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def pkcs8(key: ec.EllipticCurvePrivateKey) -> str:
    return b64u_encode(
        key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def raw_public(key: ed25519.Ed25519PrivateKey) -> str:
    return b64u_encode(
        key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def terminal_parts(n_parts: int) -> list[list[Record]]:
    """Records for a terminal stream: each part after the first starts with a keyframe."""
    parts, t = [], 0
    for seq in range(n_parts):
        records = []
        if seq:
            records.append(Record(RecordType.KEYFRAME, t, f"\x1b[2J\x1b[Hscreen at {t}".encode()))
        else:
            records.append(Record(RecordType.RESIZE, 0, b"80x24"))
        for i in range(3):
            t += 250
            records.append(Record(RecordType.OUTPUT, t, f"line {seq}.{i} é ☃\r\n".encode()))
        records.append(Record(RecordType.INPUT, t, b"ls -la\r"))
        records.append(Record(RecordType.MARKER, t, "étape".encode()))
        parts.append(records)
    return parts


def seal_terminal(keys, *, recording: str, n_parts: int = 3, final: bool = True,
                  record_public_keys=None) -> tuple[list[bytes], list[list[Record]]]:
    """Seal a terminal stream with Python; return the parts and their records."""
    recs = terminal_parts(n_parts)
    parts, prev = [], ""
    for seq, records in enumerate(recs):
        data = part_seal(
            plaintext=records_encode(records), recording=recording, stream="terminal", seq=seq,
            final=final and seq == n_parts - 1, t0=records[0].t, t1=records[-1].t, prev=prev,
            kf=(13 + len(records[0].data)) if seq else 0,
            record_public_keys=record_public_keys or [keys["record"].public_key()],
            signer_key=keys["signer"],
        )
        parts.append(data)
        prev = part_digest(data)
    return parts, recs


@pytest.fixture(scope="module")
def keys():
    return {
        "signer": signer_key_generate(),
        "record": record_key_generate(),
        "other_record": record_key_generate(),
        "user_a": record_key_generate(),
        "user_b": record_key_generate(),
    }


@pytest.fixture
def recording() -> str:
    return str(uuid.uuid4())


def open_stream_js(page, keys, recording, parts, *, record=None, signer=None, stream="terminal"):
    """Open parts in the browser with streamOpen; return what was yielded and the error."""
    return js(page, """
      const recordKey = await k.recordKeyImport(a.recordKey);
      const signers = await k.signersImport([a.signer]);
      const out = [];
      try {
        for await (const p of k.streamOpen({parts: a.parts.map(dec), recording: a.recording,
                                            stream: a.stream, signers, recordKey})) {
          out.push({header: p.header, plaintext: enc(p.plaintext), hash: p.hash});
        }
      } catch (e) {
        if (!(e instanceof k.KsrError)) throw e;
        return {opened: out, error: e.name, tampered: e.tampered, parts: e.parts, t1: e.t1};
      }
      return {opened: out, error: null};
    """, {
        "recordKey": pkcs8(record or keys["record"]),
        "signer": raw_public(signer or keys["signer"]),
        "parts": [b64u_encode(p) for p in parts],
        "recording": recording,
        "stream": stream,
    })


# --- (a) Python seals → Chromium opens ------------------------------------------------


def test_python_sealed_terminal_stream_opens_in_browser(ksr1_page, keys, recording):
    parts, recs = seal_terminal(keys, recording=recording, n_parts=3)

    result = open_stream_js(ksr1_page, keys, recording, parts)

    assert result["error"] is None
    assert [p["header"]["seq"] for p in result["opened"]] == [0, 1, 2]
    assert [p["header"]["final"] for p in result["opened"]] == [False, False, True]
    assert [p["hash"] for p in result["opened"]] == [part_digest(p) for p in parts]
    for opened, records in zip(result["opened"], recs, strict=True):
        assert b64u_decode(opened["plaintext"]) == records_encode(records)


def test_browser_decodes_terminal_records_like_python(ksr1_page, keys, recording):
    parts, recs = seal_terminal(keys, recording=recording, n_parts=2)
    decoded = js(ksr1_page, """
      const recordKey = await k.recordKeyImport(a.recordKey);
      const signers = await k.signersImport([a.signer]);
      const result = [];
      let after = 0;
      for (const p of await k.streamOpenAll({parts: a.parts.map(dec), recording: a.recording,
                                              stream: "terminal", signers, recordKey})) {
        const records = k.recordsDecode(p.plaintext, {after});
        after = records.at(-1).t;
        result.push({kf: p.header.kf,
                     records: records.map((r) => [r.type, r.t, enc(r.data)]),
                     // a player continuing from the previous part skips the keyframe
                     continuing: k.recordsDecode(p.plaintext.subarray(p.header.kf)).length});
      }
      return result;
    """, {"recordKey": pkcs8(keys["record"]), "signer": raw_public(keys["signer"]),
          "parts": [b64u_encode(p) for p in parts], "recording": recording})

    for got, records in zip(decoded, recs, strict=True):
        assert got["records"] == [[int(r.type), r.t, b64u_encode(r.data)] for r in records]
    assert decoded[0]["continuing"] == len(recs[0])
    assert decoded[1]["continuing"] == len(recs[1]) - 1  # keyframe skipped


def test_browser_encodes_terminal_records_like_python(ksr1_page):
    records = [r for part in terminal_parts(2) for r in part]
    encoded = js(ksr1_page,
                 "return enc(k.recordsEncode(a.map(([type, t, d]) => ({type, t, data: dec(d)}))));",
                 [[int(r.type), r.t, b64u_encode(r.data)] for r in records])
    assert b64u_decode(encoded) == records_encode(records)
    assert list(records_decode(b64u_decode(encoded))) == records


def test_concatenated_parts_split_and_open_with_second_recipient(ksr1_page, keys, recording):
    parts, _ = seal_terminal(
        keys, recording=recording, n_parts=2,
        record_public_keys=[keys["other_record"].public_key(), keys["record"].public_key()],
    )
    result = js(ksr1_page, """
      const recordKey = await k.recordKeyImport(a.recordKey);
      const signers = await k.signersImport([a.signer]);
      const parts = k.partsSplit(dec(a.blob));
      const opened = await k.streamOpenAll({parts, recording: a.recording, stream: "terminal",
                                            signers, recordKey});
      return opened.map((p) => enc(p.plaintext));
    """, {"recordKey": pkcs8(keys["record"]), "signer": raw_public(keys["signer"]),
          "blob": b64u_encode(b"".join(parts)), "recording": recording})

    expected = [part_open(p, record_private_key=keys["record"],
                          signers={signer_key_id(keys["signer"]): keys["signer"].public_key()},
                          recording=recording, stream="terminal", seq=i).plaintext
                for i, p in enumerate(parts)]
    assert [b64u_decode(x) for x in result] == expected


def test_one_mebibyte_part_opens_in_browser(ksr1_page, keys, recording):
    plaintext = bytes(range(256)) * 4096
    data = part_seal(plaintext=plaintext, recording=recording, stream="guac", seq=0, final=True,
                     t0=0, t1=10_000, prev="", kf=0,
                     record_public_keys=[keys["record"].public_key()], signer_key=keys["signer"])
    digest = js(ksr1_page, """
      const recordKey = await k.recordKeyImport(a.recordKey);
      const signers = await k.signersImport([a.signer]);
      const p = await k.partOpen({bytes: dec(a.part), recording: a.recording, stream: "guac",
                                  seq: 0, prev: "", signers, recordKey});
      return [p.plaintext.length, await k.sha256Hex(p.plaintext)];
    """, {"recordKey": pkcs8(keys["record"]), "signer": raw_public(keys["signer"]),
          "part": b64u_encode(data), "recording": recording})
    assert digest == [len(plaintext), part_digest(plaintext)]


# --- (b) Chromium seals → Python opens --------------------------------------------------


def test_browser_sealed_stream_opens_in_python(ksr1_page, keys, recording):
    recs = terminal_parts(3)
    sealed = js(ksr1_page, """
      const signerKey = await k.signerKeyGenerate();
      const recordPublicKeys = a.recordKeys.map(dec);
      const parts = [];
      let prev = "";
      for (const [seq, plaintext] of a.plaintexts.entries()) {
        const part = await k.partSeal({
          plaintext: dec(plaintext), recording: a.recording, stream: "terminal", seq,
          final: seq === a.plaintexts.length - 1, t0: a.times[seq][0], t1: a.times[seq][1],
          prev, kf: a.kfs[seq], recordPublicKeys, signerKey});
        parts.push(enc(part));
        prev = await k.sha256Hex(part);
      }
      const raw = new Uint8Array(await crypto.subtle.exportKey("raw", signerKey.publicKey));
      return {parts, signer: enc(raw)};
    """, {
        "plaintexts": [b64u_encode(records_encode(r)) for r in recs],
        "times": [[r[0].t, r[-1].t] for r in recs],
        "kfs": [0] + [13 + len(r[0].data) for r in recs[1:]],
        "recordKeys": [spki(keys["other_record"].public_key()), spki(keys["record"].public_key())],
        "recording": recording,
    })
    signer = ed25519.Ed25519PublicKey.from_public_bytes(b64u_decode(sealed["signer"]))
    parts = [b64u_decode(p) for p in sealed["parts"]]

    for record_key in (keys["record"], keys["other_record"]):
        opened = list(stream_open(parts, record_private_key=record_key,
                                  signers={signer_key_id(signer): signer},
                                  recording=recording, stream="terminal"))
        assert [o.plaintext for o in opened] == [records_encode(r) for r in recs]
        assert [list(records_decode(o.plaintext)) for o in opened] == recs
        assert opened[-1].header.final
        assert [o.header.kf for o in opened] == [0] + [13 + len(r[0].data) for r in recs[1:]]


def test_canonical_json_matches_python(ksr1_page):
    value = {
        "z": [1, -2, 0, True, False, None], "a": "plain", "é": "clé ☃ 𝄞 \u0000\u001f\u007f\u0080",
        "quote\"back\\slash": "\n\r\t\b\f/", "nested": {"b": {}, "a": []},
        "\U0001d11e": 9007199254740991,
        "\uffff": "x", "big": 2**40,
    }
    got = js(ksr1_page, "return k.canonicalJson(a);", value)
    assert got == json.dumps(value, sort_keys=True, separators=(",", ":"))


def test_base64url_is_as_strict_as_python(ksr1_page):
    samples = [bytes(range(n)) for n in range(8)] + [b"\xff\xfe\xfd" * 5]
    invalid = ["AA==", "A", "AB", "A+/", "AAA=", "ab c", "é"]
    got = js(ksr1_page, """
      const tryDecode = (t) => { try { return enc(dec(t)); } catch { return null; } };
      return {encoded: a.samples.map((s) => enc(Uint8Array.from(s))),
              invalid: a.invalid.map(tryDecode)};
    """, {"samples": [list(s) for s in samples], "invalid": invalid})
    assert got["encoded"] == [b64u_encode(s) for s in samples]
    for text, result in zip(invalid, got["invalid"], strict=True):
        with pytest.raises(ValueError, match="base64url"):
            b64u_decode(text)
        assert result is None, text


def test_browser_refuses_to_seal_invalid_parts(ksr1_page, keys, recording):
    result = js(ksr1_page, """
      const signerKey = await k.signerKeyGenerate();
      const base = {plaintext: new Uint8Array([1]), recording: a.recording, stream: "terminal",
                    seq: 0, final: false, t0: 0, t1: 0, prev: "", kf: 0,
                    recordPublicKeys: [dec(a.record)], signerKey};
      const attempt = (over) => k.partSeal({...base, ...over}).then(() => "sealed", (e) => e.name);
      return [await attempt({}), await attempt({plaintext: new Uint8Array(0)}),
              await attempt({recordPublicKeys: []}), await attempt({seq: 1, prev: ""}),
              await attempt({stream: "video"}), await attempt({t0: 5, t1: 4}),
              await attempt({recording: a.recording.toUpperCase()})];
    """, {"record": spki(keys["record"].public_key()), "recording": recording})
    assert result == ["sealed"] + ["RangeError"] * 6


# --- (c) protected user keys -----------------------------------------------------------


@pytest.mark.parametrize("passphrase", [PASSPHRASE_NFC, PASSPHRASE_NFD], ids=["nfc", "nfd"])
def test_python_protected_user_key_unlocks_in_browser(ksr1_page, keys, passphrase):
    protected = user_key_protect(keys["user_a"], passphrase=PASSPHRASE_NFC, user_id="42",
                                 iterations=TEST_ITERATIONS)
    kid = js(ksr1_page, """
      const key = await k.privateKeyUnlock({protectedKey: a.protected, passphrase: a.passphrase,
                                            userId: "42", minIterations: a.min});
      return key.kid;
    """, {"protected": protected, "passphrase": passphrase, "min": TEST_ITERATIONS})
    assert kid == record_key_id(keys["user_a"])


@pytest.mark.parametrize("passphrase", [PASSPHRASE_NFC, PASSPHRASE_NFD], ids=["nfc", "nfd"])
def test_browser_protected_user_key_unlocks_in_python(ksr1_page, passphrase):
    result = js(ksr1_page, """
      const pair = await k.keyPairGenerate();
      const protectedKey = await k.privateKeyProtect({privateKey: pair.privateKey,
        passphrase: a.passphrase, userId: 7, iterations: a.iterations});
      const spki = enc(await k.spkiOf(pair.publicKey));
      return {protectedKey: JSON.stringify(protectedKey), spki};
    """, {"passphrase": passphrase, "iterations": TEST_ITERATIONS})
    protected = json.loads(result["protectedKey"])
    assert set(protected) == {"kdf", "iterations", "salt", "nonce", "ct"}
    assert protected["kdf"] == "pbkdf2-sha256"
    assert protected["iterations"] == TEST_ITERATIONS

    other_form = PASSPHRASE_NFD if passphrase == PASSPHRASE_NFC else PASSPHRASE_NFC
    key = user_key_unlock(result["protectedKey"], passphrase=other_form, user_id="7",
                          min_iterations=TEST_ITERATIONS)
    assert spki(key.public_key()) == result["spki"]
    with pytest.raises(pyerrors.WrongPassphrase):
        user_key_unlock(protected, passphrase=passphrase, user_id="8",
                        min_iterations=TEST_ITERATIONS)


def test_browser_protect_defaults_to_a_million_iterations(ksr1_page):
    iterations = js(ksr1_page, """
      const pair = await k.keyPairGenerate();
      const protectedKey = await k.privateKeyProtect({privateKey: pair.privateKey,
                                                      passphrase: "x", userId: "1"});
      return protectedKey.iterations;
    """)
    assert iterations >= 1_000_000


def test_wrong_passphrase_and_weak_protection_in_browser(ksr1_page, keys):
    protected = user_key_protect(keys["user_a"], passphrase=PASSPHRASE_NFC, user_id="42",
                                 iterations=TEST_ITERATIONS)
    result = js(ksr1_page, """
      const attempt = async (opts) => {
        try {
          const key = await k.privateKeyUnlock({protectedKey: a.protected, userId: "42", ...opts});
          return {unlocked: key.kid};
        } catch (e) { return {error: e.name, tampered: e.tampered}; }
      };
      return {
        wrong: await attempt({passphrase: a.passphrase + "!", minIterations: a.min}),
        otherUser: await attempt({passphrase: a.passphrase, userId: "43", minIterations: a.min}),
        weak: await attempt({passphrase: a.passphrase}),
        malformed: await attempt({passphrase: a.passphrase, minIterations: a.min,
                                  protectedKey: {...a.protected, salt: "!!"}}),
      };
    """, {"protected": protected, "passphrase": PASSPHRASE_NFC, "min": TEST_ITERATIONS})
    assert result == {
        "wrong": {"error": "WrongPassphrase", "tampered": False},
        "otherUser": {"error": "WrongPassphrase", "tampered": False},
        "weak": {"error": "WeakKeyProtection", "tampered": False},
        "malformed": {"error": "MalformedKey", "tampered": False},
    }


# --- (d) record key shares -------------------------------------------------------------


def test_browser_grants_record_key_to_user_b_python_opens(ksr1_page, keys):
    record_kid = record_key_id(keys["record"])
    share = js(ksr1_page, """
      const recordKey = await k.recordKeyImport(a.recordKey);
      return await k.recordKeyShareWrap({recordKey, userId: "b-2", userPublicKey: a.userB});
    """, {"recordKey": pkcs8(keys["record"]), "userB": spki(keys["user_b"].public_key())})

    opened = record_key_share_unwrap(share, user_private_key=keys["user_b"], user_id="b-2",
                                     record_kid=record_kid)
    assert record_key_id(opened) == record_kid
    with pytest.raises(pyerrors.BadKeyShare):
        record_key_share_unwrap(share, user_private_key=keys["user_b"], user_id="b-3",
                                record_kid=record_kid)


def test_python_share_unlock_and_play_in_browser(ksr1_page, keys, recording):
    """The whole client flow: passphrase → user key → record key share → parts."""
    protected = user_key_protect(keys["user_a"], passphrase=PASSPHRASE_NFC, user_id="11",
                                 iterations=TEST_ITERATIONS)
    share = record_key_share_wrap(record_private_key=keys["record"],
                                  user_public_key=keys["user_a"].public_key(), user_id="11")
    parts, recs = seal_terminal(keys, recording=recording, n_parts=2)

    result = js(ksr1_page, """
      const userKey = await k.privateKeyUnlock({protectedKey: a.protected, passphrase: a.passphrase,
                                                userId: "11", minIterations: a.min});
      const recordKey = await k.recordKeyShareOpen({share: a.share, recordKid: a.recordKid,
                                                    userId: "11", userKey});
      const signers = await k.signersImport([a.signer]);
      const opened = await k.streamOpenAll({parts: a.parts.map(dec), recording: a.recording,
                                            stream: "terminal", signers, recordKey});
      // Granting: the unlocked record key re-wrapped for user B.
      const grant = await k.recordKeyShareWrap({recordKey, userId: "12", userPublicKey: a.userB});
      const wrongUser = await k.recordKeyShareOpen({share: a.share, recordKid: a.recordKid,
                                                    userId: "12", userKey}).catch((e) => e.name);
      const plaintexts = opened.map((p) => enc(p.plaintext));
      return {kid: recordKey.kid, plaintexts, grant, wrongUser};
    """, {"protected": protected, "passphrase": PASSPHRASE_NFD, "min": TEST_ITERATIONS,
          "share": share, "recordKid": record_key_id(keys["record"]),
          "signer": raw_public(keys["signer"]),
          "parts": [b64u_encode(p) for p in parts], "recording": recording,
          "userB": spki(keys["user_b"].public_key())})

    assert result["kid"] == record_key_id(keys["record"])
    assert [b64u_decode(p) for p in result["plaintexts"]] == [records_encode(r) for r in recs]
    assert result["wrongUser"] == "BadKeyShare"
    granted = record_key_share_unwrap(result["grant"], user_private_key=keys["user_b"],
                                      user_id="12", record_kid=result["kid"])
    assert pkcs8(granted) == pkcs8(keys["record"])


# --- (e) tampering, truncation, splicing ---------------------------------------------------


def python_error(data: bytes, keys, recording: str, seq: int = 0) -> str:
    try:
        part_open(data, record_private_key=keys["record"],
                  signers={signer_key_id(keys["signer"]): keys["signer"].public_key()},
                  recording=recording, stream="terminal", seq=seq)
    except pyerrors.KsrError as exc:
        return type(exc).__name__
    return "opened"


def test_flipped_byte_anywhere_is_refused_like_python(ksr1_page, keys, recording):
    part = seal_terminal(keys, recording=recording, n_parts=1)[0][0]
    header_len = int.from_bytes(part[4:8], "big")
    body = 8 + header_len
    positions = {
        "magic": 0, "header length": 7, "header open brace": 8,
        "header seq digit": part.index(b'"seq":0') + 6, "header final": part.index(b'"final":') + 9,
        "header recording": part.index(recording.encode()) + 3,
        "header signer": part.index(b'"signer":"') + 12, "header enc": part.index(b'"enc":"') + 20,
        "nonce": body + 1, "ciphertext": body + 12 + 3, "tag": len(part) - 64 - 1,
        "signature": len(part) - 1,
    }
    tampered = {}
    for name, pos in positions.items():
        data = bytearray(part)
        data[pos] ^= 0x01
        tampered[name] = b64u_encode(bytes(data))

    results = js(ksr1_page, """
      const recordKey = await k.recordKeyImport(a.recordKey);
      const signers = await k.signersImport([a.signer]);
      const out = {};
      for (const [name, part] of Object.entries(a.tampered)) {
        try {
          const p = await k.partOpen({bytes: dec(part), recording: a.recording, stream: "terminal",
                                      seq: 0, prev: "", signers, recordKey});
          out[name] = {plaintext: enc(p.plaintext)};
        } catch (e) {
          out[name] = {error: e.name, tampered: e.tampered, ksr: e instanceof k.TamperedPart};
        }
      }
      return out;
    """, {"recordKey": pkcs8(keys["record"]), "signer": raw_public(keys["signer"]),
          "tampered": tampered, "recording": recording})

    for name, got in results.items():
        assert "plaintext" not in got, f"{name}: plaintext returned from a tampered part"
        assert got["tampered"] is True, (name, got)
        assert got["ksr"] is True, (name, got)
        assert got["error"] == python_error(b64u_decode(tampered[name]), keys, recording), name
    assert results["signature"]["error"] == "BadSignature"
    assert results["ciphertext"]["error"] == "BadSignature"
    assert results["magic"]["error"] == "MalformedPart"


def test_non_canonical_header_with_valid_signature_is_refused(ksr1_page, keys, recording):
    part = seal_terminal(keys, recording=recording, n_parts=1)[0][0]
    header_len = int.from_bytes(part[4:8], "big")
    header = json.loads(part[8 : 8 + header_len])
    # whitespace, then key order: both signed by the trusted signer, neither canonical
    for variant in (json.dumps(header, sort_keys=True).encode(),
                    json.dumps(dict(reversed(header.items())), separators=(",", ":")).encode()):
        signed = b"KSR1" + len(variant).to_bytes(4, "big") + variant + part[8 + header_len : -64]
        data = signed + keys["signer"].sign(signed)
        assert python_error(data, keys, recording) == "NonCanonicalHeader"
        got = js(ksr1_page, """
          const signers = await k.signersImport([a.signer]);
          const recordKey = await k.recordKeyImport(a.recordKey);
          const p = await k.partOpen({bytes: dec(a.part), recording: a.recording,
                                      stream: "terminal", seq: 0, signers, recordKey});
          return {plaintext: enc(p.plaintext)};
        """, {"recordKey": pkcs8(keys["record"]), "signer": raw_public(keys["signer"]),
              "part": b64u_encode(data), "recording": recording})
        assert got["error"] == "NonCanonicalHeader"
        assert got["tampered"] is True


def test_truncated_stream_is_incomplete_but_its_prefix_plays(ksr1_page, keys, recording):
    parts, _ = seal_terminal(keys, recording=recording, n_parts=3)
    result = open_stream_js(ksr1_page, keys, recording, parts[:2])
    assert result["error"] == "IncompleteStream"
    assert result["tampered"] is False
    assert result["parts"] == 2
    assert len(result["opened"]) == 2

    unfinished, _ = seal_terminal(keys, recording=recording, n_parts=2, final=False)
    assert open_stream_js(ksr1_page, keys, recording, unfinished)["error"] == "IncompleteStream"
    assert open_stream_js(ksr1_page, keys, recording, [])["error"] == "IncompleteStream"


@pytest.mark.parametrize(
    ("case", "error", "valid_prefix"),
    [
        ("dropped middle part", "UnexpectedPart", 1),
        ("reordered", "UnexpectedPart", 0),
        ("spliced from another sealing", "BrokenChain", 1),
        ("part after final", "UnexpectedPart", 3),
        ("other recording", "UnexpectedPart", 0),
        ("untrusted signer", "UnknownSigner", 0),
        ("other record key", "NoRecipient", 0),
    ],
)
def test_stream_attacks_are_refused(ksr1_page, keys, recording, case, error, valid_prefix):
    parts, _ = seal_terminal(keys, recording=recording, n_parts=3)
    kwargs = {}
    if case == "dropped middle part":
        parts = [parts[0], parts[2]]
    elif case == "reordered":
        parts = [parts[1], parts[0], parts[2]]
    elif case == "spliced from another sealing":
        other, _ = seal_terminal(keys, recording=recording, n_parts=3)
        parts = [parts[0], other[1], other[2]]
    elif case == "part after final":
        parts = [*parts, parts[2]]
    elif case == "other recording":
        parts, _ = seal_terminal(keys, recording=str(uuid.uuid4()), n_parts=3)
    elif case == "untrusted signer":
        kwargs["signer"] = signer_key_generate()
    elif case == "other record key":
        kwargs["record"] = keys["other_record"]

    result = open_stream_js(ksr1_page, keys, recording, parts, **kwargs)

    assert result["error"] == error
    assert len(result["opened"]) == valid_prefix
    assert result["tampered"] is (error != "NoRecipient")


# --- (f) the fixed vectors of tests/crypto/vectors ----------------------------------------


def load_vector(name: str) -> dict:
    return json.loads((VECTORS / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def vectors() -> dict:
    return {name: load_vector(name) for name in ("keys", "parts", "stream", "user_keys")}


def vector_arg(vectors: dict, **extra) -> dict:
    """Keys every vector test needs in the page, plus ``extra``."""
    k = vectors["keys"]
    return {"record": k["record"]["private_pkcs8"], "other": k["other_record"]["private_pkcs8"],
            "signer": k["signer"]["public_raw"], **extra}


VECTOR_JS_KEYS = """
  const keys = {record: await k.recordKeyImport(a.record), other: await k.recordKeyImport(a.other)};
  const signers = await k.signersImport([a.signer]);
"""


def test_vector_valid_parts_open_in_browser(ksr1_page, vectors):
    cases = vectors["parts"]["valid"]
    got = js(ksr1_page, VECTOR_JS_KEYS + """
      const out = {};
      for (const [name, c] of Object.entries(a.cases)) {
        const p = await k.partOpen({bytes: dec(c.part), ...c.open, signers,
                                    recordKey: keys.record});
        // The AES-GCM layer alone, from the recorded DEK and nonce.
        const parsed = k.partParse(dec(c.part));
        const dek = await crypto.subtle.importKey("raw", dec(c.dek), "AES-GCM", false, ["decrypt"]);
        const direct = await crypto.subtle.decrypt(
          {name: "AES-GCM", iv: parsed.nonce, additionalData: parsed.aad}, dek, parsed.ciphertext);
        out[name] = {header: p.header, plaintext: enc(p.plaintext), digest: p.hash,
                     nonce: enc(parsed.nonce), direct: enc(direct)};
      }
      return out;
    """, vector_arg(vectors, cases=cases))
    for name, case in cases.items():
        assert got[name] == {"header": case["header"], "plaintext": case["plaintext"],
                             "digest": case["digest"], "nonce": case["nonce"],
                             "direct": case["plaintext"]}, name


def test_vector_records_decode_in_browser(ksr1_page, vectors):
    plaintext = vectors["parts"]["valid"]["terminal_seq0"]["plaintext"]
    got = js(ksr1_page, "return k.recordsDecode(dec(a)).map((r) => ({type: r.type, t: r.t, "
                        "data: enc(r.data)}));", plaintext)
    assert got == vectors["parts"]["records"]["terminal_seq0"]


def test_vector_invalid_parts_are_refused_in_browser(ksr1_page, vectors):
    cases = vectors["parts"]["invalid"]
    got = js(ksr1_page, VECTOR_JS_KEYS + """
      const out = [];
      for (const c of a.cases) {
        try {
          const recordKey = keys[c.record_key === "other_record" ? "other" : "record"];
          const p = await k.partOpen({bytes: dec(c.part), ...c.open, signers, recordKey});
          out.push({name: c.name, plaintext: enc(p.plaintext)});
        } catch (e) {
          out.push({name: c.name, error: e.name, matches: e instanceof k[c.error],
                    tampered: e.tampered});
        }
      }
      return out;
    """, vector_arg(vectors, cases=cases))
    for case, result in zip(cases, got, strict=True):
        assert "plaintext" not in result, case["name"]
        assert result["matches"] is True, (case, result)
        assert result["tampered"] is (case["error"] != "NoRecipient"), case["name"]


def test_vector_stream_cases_in_browser(ksr1_page, vectors):
    stream = vectors["stream"]
    got = js(ksr1_page, VECTOR_JS_KEYS + """
      const out = {};
      for (const c of a.stream.cases) {
        const parts = c.order.map((i) => dec(a.stream.parts[i]));
        try {
          const opened = await k.streamOpenAll({parts, recording: a.stream.recording,
                                                stream: a.stream.stream, signers,
                                                recordKey: keys.record});
          out[c.name] = {result: "complete", parts: opened.length};
        } catch (e) {
          out[c.name] = {result: e instanceof k.IncompleteStream ? "incomplete"
                                 : e instanceof k.TamperedPart ? "tampered" : e.name};
        }
      }
      return out;
    """, vector_arg(vectors, stream=stream))
    for case in stream["cases"]:
        assert got[case["name"]]["result"] == case["result"], case["name"]
    assert got["complete"]["parts"] == 2


@pytest.mark.parametrize("form", ["passphrase_nfc", "passphrase_nfd"])
def test_vector_user_key_and_share_open_in_browser(ksr1_page, vectors, form):
    user = vectors["user_keys"]
    got = js(ksr1_page, """
      const userKey = await k.privateKeyUnlock({protectedKey: a.user.protected_fast,
        passphrase: a.user[a.form], userId: a.user.user_id, minIterations: 1000});
      const recordKey = await k.recordKeyShareOpen({share: a.user.record_key_share,
        recordKid: a.user.record_kid, userId: a.user.user_id, userKey});
      const weak = await k.privateKeyUnlock({protectedKey: a.user.protected_fast,
        passphrase: a.user[a.form], userId: a.user.user_id}).catch((e) => e.name);
      const recordPkcs8 = await crypto.subtle.exportKey("pkcs8", recordKey.keyPair.privateKey);
      return {userSpki: enc(await k.spkiOf(userKey.keyPair.publicKey)), recordKid: recordKey.kid,
              recordPkcs8: enc(recordPkcs8), weak};
    """, {"user": user, "form": form})
    assert got == {"userSpki": user["user_public_spki"], "recordKid": user["record_kid"],
                   "recordPkcs8": user["record_private_pkcs8"], "weak": "WeakKeyProtection"}


def test_vector_user_key_with_real_iterations_unlocks_in_browser(ksr1_page, vectors):
    user = vectors["user_keys"]
    kid = js(ksr1_page, """
      const key = await k.privateKeyUnlock({protectedKey: a.protected_real,
                                            passphrase: a.passphrase_nfd, userId: a.user_id});
      return key.kid;
    """, user)
    assert kid == vectors["keys"]["user"]["kid"]


# --- the import map also serves the players' packages -------------------------------------


def test_import_map_loads_player_packages(ksr1_page):
    got = ksr1_page.evaluate("""async () => {
      const {default: Guacamole} = await import("guacamole-common-js");
      await import("@xterm/xterm");      // UMD: defines globalThis.Terminal
      await import("@xterm/addon-fit");  // UMD: defines globalThis.FitAddon
      const term = new globalThis.Terminal({cols: 80, rows: 24});
      term.loadAddon(new globalThis.FitAddon.FitAddon());
      return {guac: typeof Guacamole.Client, session: typeof Guacamole.SessionRecording,
              terminal: term.cols, hpke: typeof (await import("@hpke/core")).CipherSuite};
    }""")
    assert got == {"guac": "function", "session": "function", "terminal": 80, "hpke": "function"}
