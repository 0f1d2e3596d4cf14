/**
 * Pending grants: users newly entitled to a record's recordings wait for a
 * share of its record key. Any authorised user's browser can make one: open
 * its own share, re-wrap the record key to the waiting user's public key and
 * post it. The vault UI does this on every unlock.
 * @module app/grants
 */

import * as ksr1 from "ksr1";
import { api, apiAll } from "./api.js";

/**
 * Make every pending grant the caller can make.
 * @param {{userId: string, userKey: ksr1.UserKey}} who the unlocked caller
 * @returns {Promise<{users: number, shares: number, failed: number}>}
 */
export async function grantsProcess({ userId, userKey }) {
  const pending = await apiAll("/api/v1/grants/pending/");
  if (pending.length === 0) return { users: 0, shares: 0, failed: 0 };
  const sharesOf = new Map(); // record id → the caller's shares
  const opened = new Map(); // record key id → record key
  const out = [];
  let failed = 0;
  for (const item of pending) {
    try {
      if (!opened.has(item.record_key_id)) {
        if (!sharesOf.has(item.record)) sharesOf.set(item.record, await apiAll(`/api/v1/records/${item.record}/key-shares/`));
        const mine = sharesOf.get(item.record).find((s) => s.record_key_id === item.record_key_id);
        if (!mine) throw new Error(`no share of record key ${item.record_key_id}`);
        opened.set(item.record_key_id, await ksr1.recordKeyShareOpen({
          share: mine.share, recordKid: item.record_key_id, userId, userKey,
        }));
      }
      const share = await ksr1.recordKeyShareWrap({
        recordKey: opened.get(item.record_key_id), recordKid: item.record_key_id,
        userId: String(item.user), userPublicKey: item.user_public_key,
      });
      out.push({ record_key_id: item.record_key_id, user: item.user, share });
    } catch (e) {
      failed += 1;
      console.warn(`cannot grant record ${item.record} to user ${item.user}:`, e);
    }
  }
  if (out.length === 0) return { users: 0, shares: 0, failed };
  const { results } = await api("/api/v1/grants/", { method: "POST", body: { shares: out } });
  const granted = results.filter((r) => r.status === "granted");
  return { users: new Set(granted.map((r) => r.user)).size, shares: granted.length, failed };
}
