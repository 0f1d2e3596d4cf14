/**
 * Download a session's typescript: fetch the sealed `typescript-zip` parts,
 * verify (trusted signers from /api/v1/signers/) and decrypt them in the
 * browser with the user's record key share, and save the zip as
 * `<record>-<timestamp>.zip`. The server only ever sends ciphertext.
 * @module app/download
 */

import * as ksr1 from "ksr1";
import { api, apiAll } from "./api.js";
import { recordKeyOpen } from "./keyring.js";

const STREAM = "typescript-zip";

/** `<record>-<YYYYmmdd-HHMMSS>` (UTC), the stem the sealer gives the files inside the zip. */
export function downloadStem(recordName, startedAt) {
  const stem = recordName.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "") || "session";
  const t = new Date(startedAt);
  const p = (n) => String(n).padStart(2, "0");
  return `${stem}-${t.getUTCFullYear()}${p(t.getUTCMonth() + 1)}${p(t.getUTCDate())}-${p(t.getUTCHours())}${p(t.getUTCMinutes())}${p(t.getUTCSeconds())}`;
}

/** Trusted signer keys, imported once per page. */
let signersPromise;
export function trustedSigners() {
  signersPromise ??= apiAll("/api/v1/signers/").then((rows) => ksr1.signersImport(rows.map((r) => r.public_key)));
  signersPromise.catch(() => { signersPromise = undefined; });
  return signersPromise;
}

/**
 * The record key a part is sealed to, among the caller's shares.
 * @returns {Promise<ksr1.RecordKey>}
 */
export async function recordKeyForPart(bytes, recordId, who) {
  const { header } = ksr1.partParse(bytes);
  let lastError;
  for (const { kid } of header.recipients) {
    try {
      return await recordKeyOpen(recordId, kid, who);
    } catch (e) {
      lastError = e;
    }
  }
  throw lastError ?? new ksr1.NoRecipient("this recording is not sealed to any key you hold");
}

/**
 * Decrypt and save a session's typescript zip (audited).
 * @param {object} p
 * @param {object} p.session a row of /api/v1/records/{id}/sessions/
 * @param {object} p.record the record (id, name)
 * @param {{userId: string, userKey: ksr1.UserKey}} p.who the unlocked caller
 * @param {(done: number, total: number) => void} [p.onProgress]
 * @returns {Promise<{name: string, size: number}>}
 */
export async function sessionDownload({ session, record, who, onProgress = () => {} }) {
  await api(`/api/v1/sessions/${session.id}/audit/`, { method: "POST", body: { action: "download" } });
  const parts = await apiAll(`/api/v1/sessions/${session.id}/streams/${STREAM}/parts/`);
  if (parts.length === 0) throw new Error("This session has no typescript to download.");
  const signers = await trustedSigners();
  onProgress(0, parts.length);
  const first = await api(parts[0].url, { as: "bytes" });
  const recordKey = await recordKeyForPart(first, record.id, who);
  async function* fetched() {
    yield first;
    for (const part of parts.slice(1)) yield api(part.url, { as: "bytes" });
  }
  const chunks = [];
  let done = 0;
  try {
    for await (const opened of ksr1.streamOpen({
      parts: fetched(), recording: session.recording, stream: STREAM, signers, recordKey,
    })) {
      chunks.push(opened.plaintext);
      done += 1;
      onProgress(done, parts.length);
    }
  } catch (e) {
    chunks.length = 0;
    if (e instanceof ksr1.IncompleteStream) throw new Error("The download is incomplete: its last part is missing.");
    if (e.tampered || e instanceof ksr1.TamperedPart) {
      throw new Error("This recording failed verification (it may have been tampered with); nothing was saved.");
    }
    throw e;
  }
  const name = `${downloadStem(record.name, session.started_at)}.zip`;
  const blob = new Blob(chunks, { type: "application/zip" });
  const url = URL.createObjectURL(blob);
  const a = Object.assign(document.createElement("a"), { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return { name, size: blob.size };
}
