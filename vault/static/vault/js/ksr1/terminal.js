/**
 * Plaintext of `terminal` parts (FORMAT.md §4): records
 * type (1 byte) ‖ t (u64be, ms since session start) ‖ len (u32be) ‖ data,
 * back to back; records never span parts and `t` never decreases.
 * Mirrors keeperpam.crypto.terminal's records_decode / records_encode.
 * @module ksr1/terminal
 */

import { MalformedRecord } from "./errors.js";

/** Record types. */
export const RecordType = Object.freeze({
  OUTPUT: 0x01,
  INPUT: 0x02,
  RESIZE: 0x03,
  MARKER: 0x04,
  KEYFRAME: 0x05,
});

export const RECORD_HEADER_BYTES = 13;

/**
 * @typedef {object} TerminalRecord
 * @property {number} type one of RecordType
 * @property {number} t ms since session start
 * @property {Uint8Array} data a view into the plaintext
 */

/**
 * Decode a part's worth of records.
 * @param {Uint8Array} plaintext
 * @param {{after?: number}} [options] `after`: the last `t` seen before this part
 * @returns {TerminalRecord[]}
 * @throws {MalformedRecord} on a truncated record, an unknown type, a time
 *   that goes backwards or one beyond 2^53 ms
 */
export function recordsDecode(plaintext, { after = 0 } = {}) {
  const view = new DataView(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
  const records = [];
  let offset = 0;
  let lastT = after;
  while (offset < plaintext.length) {
    if (plaintext.length - offset < RECORD_HEADER_BYTES) throw new MalformedRecord(`truncated record header at byte ${offset}`);
    const type = plaintext[offset];
    const t = view.getBigUint64(offset + 1);
    const len = view.getUint32(offset + 9);
    const start = offset + RECORD_HEADER_BYTES;
    if (start + len > plaintext.length) throw new MalformedRecord(`record at byte ${offset} runs past the end of the part`);
    if (type < RecordType.OUTPUT || type > RecordType.KEYFRAME) throw new MalformedRecord(`unknown record type ${type} at byte ${offset}`);
    if (t > BigInt(Number.MAX_SAFE_INTEGER)) throw new MalformedRecord(`record time out of range at byte ${offset}`);
    if (Number(t) < lastT) throw new MalformedRecord(`record time goes backwards at byte ${offset}`);
    records.push({ type, t: Number(t), data: plaintext.subarray(start, start + len) });
    offset = start + len;
    lastT = Number(t);
  }
  return records;
}

/**
 * Encode records back to back.
 * @param {{type: number, t: number, data: Uint8Array}[]} records
 * @returns {Uint8Array}
 */
export function recordsEncode(records) {
  const out = new Uint8Array(records.reduce((n, r) => n + RECORD_HEADER_BYTES + r.data.length, 0));
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const r of records) {
    out[offset] = r.type;
    view.setBigUint64(offset + 1, BigInt(r.t));
    view.setUint32(offset + 9, r.data.length);
    out.set(r.data, offset + RECORD_HEADER_BYTES);
    offset += RECORD_HEADER_BYTES + r.data.length;
  }
  return out;
}
