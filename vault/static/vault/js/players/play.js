/**
 * The play page: unlock the user's key, open the record key shares, and run
 * the terminal or graphical player with its controls, banners and live
 * following. Everything is read from the public API and decrypted here.
 * @module players/play
 */

import { WrongPassphrase, privateKeyUnlock, recordKeyShareOpen } from "ksr1";
import { bannerHide, bannerShow, clock } from "./banner.js";
import { GuacPlayer } from "./guac.js";
import { PartSource, apiGet, apiGetAll, trustedSigners } from "./parts.js";
import { SPEEDS, TerminalPlayer } from "./terminal.js";

const root = document.getElementById("kp-player");
const $ = (id) => document.getElementById(id);
const banners = $("kp-banners");
const ctx = {
  record: root.dataset.record,
  session: root.dataset.session,
  recording: root.dataset.recording,
  stream: root.dataset.stream,
  user: root.dataset.user,
  live: root.dataset.live === "true",
  status: root.dataset.status,
  csrf: root.dataset.csrf,
  keyring: root.dataset.keyring,
};
const LIVE_POLL_MS = 2000;

// Show the start time in the viewer's time zone.
for (const el of document.querySelectorAll("time.kp-local-time")) {
  const when = new Date(el.getAttribute("datetime"));
  if (!Number.isNaN(when.getTime())) {
    el.textContent = when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
  }
}

/**
 * The unlocked user key: from the vault UI's keyring when it holds one,
 * otherwise unlocked here with the passphrase (ksr1, PBKDF2 in this page).
 * @returns {Promise<import("ksr1").UserKey>}
 */
async function userKeyObtain() {
  if (ctx.keyring) {
    try {
      const keyring = await import(ctx.keyring);
      const key = await keyring.keyringLoad(ctx.user);
      if (key) return key;
    } catch {
      // no keyring module (or nothing unlocked yet): unlock here
    }
  }
  let blob;
  try {
    blob = await apiGet("/api/v1/me/key/");
  } catch (e) {
    if (e.status === 404) {
      bannerShow(banners, "error", "You have no vault key yet.",
        "Enrol a key on the vault home page first; then someone with access can grant you this record's recordings.");
    }
    throw e;
  }
  const form = $("kp-unlock");
  form.hidden = false;
  form.querySelector("input").focus();
  return new Promise((resolve) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = $("kp-unlock-error");
      const button = form.querySelector("button");
      button.disabled = true;
      button.textContent = "Unlocking…";
      error.hidden = true;
      try {
        const key = await privateKeyUnlock({
          protectedKey: blob.protected_private_key, passphrase: form.passphrase.value, userId: ctx.user,
        });
        form.passphrase.value = "";
        form.hidden = true;
        resolve(key);
      } catch (e) {
        error.textContent = e instanceof WrongPassphrase ? "That passphrase does not unlock your key." : e.message;
        error.hidden = false;
        button.disabled = false;
        button.textContent = "Unlock and play";
      }
    });
  });
}

/** Every record key of this record the user holds a share of, opened. */
async function recordKeysOpen(userKey) {
  const shares = await apiGetAll(`/api/v1/records/${ctx.record}/key-shares/?page_size=200`);
  const keys = [];
  for (const row of shares) {
    try {
      keys.push(await recordKeyShareOpen({ share: row.share, recordKid: row.record_key_id, userId: ctx.user, userKey }));
    } catch {
      // a share that does not open is useless here; the others may still do
    }
  }
  return keys;
}

/** Record the play in the audit trail (once); a missing endpoint is not the viewer's problem. */
let audited = false;
function auditPlay() {
  if (audited) return;
  audited = true;
  fetch(`/api/v1/sessions/${ctx.session}/audit/`, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": ctx.csrf },
    body: JSON.stringify({ action: "play", stream: ctx.stream }),
  }).catch(() => {});
}

function controlsWire(player, source) {
  const play = $("kp-play");
  const seek = $("kp-seek");
  const time = $("kp-time");
  const durationEl = $("kp-duration");
  const played = $("kp-seek-played");
  const thumb = $("kp-seek-thumb");
  const loaded = $("kp-seek-loaded");
  const bad = $("kp-seek-bad");
  const speed = $("kp-speed");
  const skip = $("kp-skip-idle");
  const loading = $("kp-loading");
  const loadingText = $("kp-loading-text");
  const loadingBar = $("kp-loading-bar");
  let dragging = null;

  const render = (position = player.position) => {
    const duration = Math.max(1, player.duration);
    const shown = dragging ?? position;
    const fraction = Math.min(1, Math.max(0, shown / duration));
    played.style.width = `${fraction * 100}%`;
    thumb.style.left = `${fraction * 100}%`;
    time.textContent = clock(shown);
    durationEl.textContent = clock(player.duration);
    seek.setAttribute("aria-valuemax", String(Math.round(player.duration)));
    seek.setAttribute("aria-valuenow", String(Math.round(shown)));
    const loadedT = player instanceof GuacPlayer ? player.loadedT : player.duration;
    loaded.style.width = `${Math.min(100, (loadedT / duration) * 100)}%`;
    bad.innerHTML = "";
    for (const [t0, t1] of player.badRanges) {
      const span = document.createElement("div");
      span.style.left = `${(t0 / duration) * 100}%`;
      span.style.width = `${Math.max(0.5, ((Math.max(t1, t0) - t0) / duration) * 100)}%`;
      bad.append(span);
    }
  };

  player.addEventListener("frame", (e) => render(e.detail.position));
  player.addEventListener("play", () => {
    root.classList.add("kp-playing");
    play.setAttribute("aria-label", "Pause");
    auditPlay();
  });
  player.addEventListener("pause", () => {
    root.classList.remove("kp-playing");
    play.setAttribute("aria-label", "Play");
  });
  player.addEventListener("loading", (e) => {
    loading.hidden = !e.detail.loading;
    if (e.detail.progress !== undefined) {
      loadingBar.value = e.detail.progress;
      loadingText.textContent = `Decrypting… ${Math.round(e.detail.progress * 100)}%`;
    } else {
      loadingBar.removeAttribute("value");
      loadingText.textContent = "Fetching and decrypting…";
    }
  });
  player.addEventListener("loaded", () => render());
  player.addEventListener("tampered", (e) => {
    const { seq, t0, error } = e.detail;
    bannerShow(banners, "tampered", "This recording has been altered.",
      `Part ${seq + 1} (from ${clock(t0)}) failed verification (${error.name}) and is not shown. ` +
      "Report this to your security team; the parts before it are authentic.");
    render();
  });
  player.addEventListener("error", (e) => {
    bannerShow(banners, "error", "Playback stopped.", e.detail.error?.message ?? String(e.detail.error));
  });
  player.addEventListener("empty", () => {
    bannerShow(banners, "info", "Nothing recorded yet.", ctx.live ? "Waiting for the first part…" : "");
  });
  player.addEventListener("ended", () => render());

  play.addEventListener("click", () => player.toggle());

  const seekTo = (t) => {
    player.seek(Math.max(0, Math.min(player.duration, t)));
  };
  const fractionAt = (event) => {
    const box = seek.getBoundingClientRect();
    return Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
  };
  seek.addEventListener("pointerdown", (event) => {
    seek.setPointerCapture(event.pointerId);
    dragging = fractionAt(event) * player.duration;
    render();
  });
  seek.addEventListener("pointermove", (event) => {
    if (dragging === null) return;
    dragging = fractionAt(event) * player.duration;
    render();
  });
  seek.addEventListener("pointerup", (event) => {
    if (dragging === null) return;
    const t = fractionAt(event) * player.duration;
    dragging = null;
    seekTo(t);
  });

  if (speed) {
    if (player instanceof GuacPlayer) speed.hidden = true;
    speed.addEventListener("change", () => player.setSpeed(Number(speed.value)));
    player.addEventListener("speed", (e) => {
      speed.value = String(e.detail.speed);
    });
  }
  if (skip) skip.addEventListener("change", () => (player.skipIdle = skip.checked));

  document.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement) return;
    if (event.key === " ") {
      event.preventDefault();
      player.toggle();
    } else if (event.key === "ArrowLeft") {
      event.preventDefault();
      seekTo(player.position - 5000);
    } else if (event.key === "ArrowRight") {
      event.preventDefault();
      seekTo(player.position + 5000);
    } else if (event.key === "[" || event.key === "]") {
      const i = SPEEDS.indexOf(player.speed);
      const next = SPEEDS[Math.max(0, Math.min(SPEEDS.length - 1, (i < 0 ? 1 : i) + (event.key === "]" ? 1 : -1)))];
      player.setSpeed(next);
    }
  });
  render(0);
  return render;
}

/** Incomplete, or still recording: say so. */
function completenessShow(source) {
  if (ctx.live) {
    bannerHide(banners, "incomplete");
    return;
  }
  if (source.parts.length && !source.complete) {
    bannerShow(banners, "incomplete", "This recording is incomplete.",
      `It stops at ${clock(source.duration)} without its final part (the gateway stopped before the end); ` +
      "everything up to there is authentic and playable.");
  }
}

/** Follow a session that is still recording: new parts every few seconds. */
function liveFollow(player, source, render) {
  const badge = $("kp-live");
  badge.hidden = false;
  player.live = true;
  bannerShow(banners, "live", "Recording now.", "New parts appear here within seconds of being sealed.");
  let polls = 0;
  const poll = async () => {
    polls += 1;
    try {
      const added = await source.refresh();
      if (added) player.partsAdded();
      if (source.complete) {
        stop();
        return;
      }
      // Now and then, ask whether the session ended without a final part.
      if (polls % 5 === 0) {
        const rows = await apiGet(`/api/v1/records/${ctx.record}/sessions/?page_size=50`);
        const row = rows.results?.find((r) => r.id === ctx.session);
        if (row && !["open", "closing"].includes(row.status)) {
          await source.refresh();
          player.partsAdded();
          stop();
          return;
        }
      }
    } catch {
      // a dropped poll is retried on the next tick
    }
    render();
  };
  const timer = setInterval(poll, LIVE_POLL_MS);
  const stop = () => {
    clearInterval(timer);
    ctx.live = false;
    player.live = false;
    badge.hidden = true;
    bannerHide(banners, "live");
    bannerHide(banners, "info");
    completenessShow(source);
    render();
  };
}

async function main() {
  let userKey;
  try {
    userKey = await userKeyObtain();
  } catch (e) {
    if (e.status !== 404) bannerShow(banners, "error", "Cannot load your key.", e.message);
    return;
  }
  const stage = $("kp-stage");
  stage.hidden = false;
  $("kp-loading").hidden = false;
  let recordKeys;
  let signers;
  try {
    [recordKeys, signers] = await Promise.all([recordKeysOpen(userKey), trustedSigners()]);
  } catch (e) {
    bannerShow(banners, "error", "Cannot load this recording.", e.message);
    return;
  }
  if (!recordKeys.length) {
    $("kp-loading").hidden = true;
    bannerShow(banners, "error", "You hold no key for this record's recordings yet.",
      "Someone who already has access grants it when they next unlock their vault.");
    return;
  }
  const source = new PartSource({ session: ctx.session, stream: ctx.stream, recording: ctx.recording, signers, recordKeys });
  const screen = $("kp-screen");
  const player = ctx.stream === "terminal" ? new TerminalPlayer({ source, screen }) : new GuacPlayer({ source, screen });
  window.kpPlayer = { player, source, ready: false };
  const render = controlsWire(player, source);
  try {
    await player.load();
  } catch (e) {
    bannerShow(banners, "error", "Cannot load this recording.", e.message);
    return;
  } finally {
    $("kp-loading").hidden = true;
  }
  performance.mark("kp-first-frame");
  completenessShow(source);
  if (ctx.live) liveFollow(player, source, render);
  render();
  window.kpPlayer.ready = true;
  screen.focus();
}

main();
