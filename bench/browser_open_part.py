"""Time opening a 1 MiB sealed part in Debian's Chromium (ksr1 on WebCrypto).

Python seals one part of 1 MiB plaintext with keeperpam.crypto; the page
imports the ksr1 modules through the real import map, and times
``partOpen`` (parse, canonical-header check, Ed25519 verify, SHA-256 of the
part, HPKE unwrap, AES-256-GCM decrypt) N times with performance.now().
Moving the bytes into the page is not timed.

    .venv/bin/python bench/browser_open_part.py [--runs 30] [--size 1048576]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import uuid
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from keeperpam.crypto.keys import (  # noqa: E402
    b64u_encode,
    record_key_generate,
    signer_key_generate,
)
from keeperpam.crypto.parts import part_seal  # noqa: E402

# The browser tests' static server and page: same import map, same layout.
from tests.browser.conftest import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    TEST_PAGE,
    StaticHandler,
)

TIMING_JS = """async (a) => {
  const k = window.ksr1;
  const bytes = k.b64uDecode(a.part);
  const recordKey = await k.recordKeyImport(a.recordKey);
  const signers = await k.signersImport([a.signer]);
  const open = () => k.partOpen({bytes, recording: a.recording, stream: "guac", seq: 0, prev: "",
                                 signers, recordKey});
  await open();  // warm-up: JIT, WebCrypto and HPKE key setup
  const times = [];
  for (let i = 0; i < a.runs; i++) {
    const start = performance.now();
    const p = await open();
    times.push(performance.now() - start);
    if (p.plaintext.length !== a.size) throw new Error("wrong plaintext length");
  }
  return times;
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--size", type=int, default=1_048_576, help="plaintext bytes (≤ 1 MiB)")
    args = parser.parse_args()

    signer, record = signer_key_generate(), record_key_generate()
    recording = str(uuid.uuid4())
    part = part_seal(
        plaintext=os.urandom(args.size), recording=recording, stream="guac", seq=0, final=True,
        t0=0, t1=10_000, prev="", kf=0, record_public_keys=[record.public_key()], signer_key=signer,
    )
    arg = {
        "part": b64u_encode(part),
        "recordKey": b64u_encode(record.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())),
        "signer": b64u_encode(signer.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)),
        "recording": recording, "runs": args.runs, "size": args.size,
    }

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(StaticHandler, directory=str(ROOT)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_port}{TEST_PAGE}")
            page.wait_for_function("window.ksr1Ready === true")
            version = browser.version
            times = page.evaluate(TIMING_JS, arg)
            browser.close()
    finally:
        server.shutdown()
        server.server_close()

    median = statistics.median(times)
    print(f"chromium {version}: partOpen of a {len(part):,}-byte part "
          f"({args.size:,} bytes plaintext), {args.runs} runs")
    print(f"  median {median:.1f} ms   min {min(times):.1f} ms   max {max(times):.1f} ms   "
          f"p90 {statistics.quantiles(times, n=10)[-1]:.1f} ms")
    print(f"  throughput at median: {args.size / 1_048_576 / (median / 1000):.0f} MiB/s")


if __name__ == "__main__":
    main()
