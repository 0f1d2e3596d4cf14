/**
 * Terminal player on xterm.js for `terminal` streams (FORMAT.md §4 records).
 *
 * Seeking never replays from the start: the player opens the one part that
 * covers the target time, resets the terminal, paints the part's keyframe
 * (the screen at the part's start, made by the sealer) and applies the
 * records up to the target. Playing on from there reads the next part with
 * the `prev` chain checked and skips its keyframe (the screen is already
 * right). Parts are fetched only when reached, one ahead.
 *
 * A part that fails verification is never written to the terminal: the
 * player stops before it and says so; later parts stay reachable by seeking.
 * @module players/terminal
 */

import "@xterm/xterm";
import { RecordType, recordsDecode } from "ksr1";

/** Pauses longer than this are shortened to it when "skip idle" is on. */
export const IDLE_CAP_MS = 1000;
export const SPEEDS = [0.5, 1, 2, 4, 8, 16];
const TICK_MS = 16;
const DEFAULT_SIZE = [80, 24];
const decoder = new TextDecoder();

/** Parse a RESIZE record's `COLSxROWS`; null if garbled (ignored, as the sealer does). */
function sizeOf(record) {
  const match = /^(\d{1,5})x(\d{1,5})$/.exec(decoder.decode(record.data));
  if (!match) return null;
  return [Math.max(1, Math.min(1000, +match[1])), Math.max(1, Math.min(500, +match[2]))];
}

export class TerminalPlayer extends EventTarget {
  /**
   * @param {object} p
   * @param {import("./parts.js").PartSource} p.source
   * @param {HTMLElement} p.screen where the terminal goes
   */
  constructor({ source, screen }) {
    super();
    this.source = source;
    this.screen = screen;
    this.term = new globalThis.Terminal({
      cols: DEFAULT_SIZE[0], rows: DEFAULT_SIZE[1], disableStdin: true, cursorBlink: false,
      convertEol: false, scrollback: 1000, fontSize: 14, allowProposedApi: true,
      fontFamily: '"DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
      theme: { background: "#0b1020", foreground: "#d7dce5", cursor: "#8ab4ff" },
    });
    this.term.open(screen);
    this.position = 0;
    this.playing = false;
    this.speed = 1;
    this.skipIdle = true;
    this.live = false;
    /** Where continuous play reads next: part index, its records, next record. */
    this.cursor = null;
    /** seq → terminal size at that part's start, as far as known. */
    this.sizes = new Map([[0, DEFAULT_SIZE]]);
    this.size = DEFAULT_SIZE;
    /** time ranges [t0, t1] of parts that failed verification */
    this.badRanges = [];
    this.seekToken = 0;
    this.timer = null;
    this.waitingForParts = false;
    new ResizeObserver(() => this.fit()).observe(screen);
  }

  get duration() {
    return this.source.duration;
  }

  /** The terminal's visible lines, right-trimmed (what a viewer sees). */
  screenText() {
    const buffer = this.term.buffer.active;
    const lines = [];
    for (let y = 0; y < this.term.rows; y++) {
      // Written blanks at a line's end are invisible: trim them like empty cells.
      lines.push((buffer.getLine(buffer.viewportY + y)?.translateToString(true) ?? "").trimEnd());
    }
    return lines.join("\n");
  }

  /** Everything in the buffer (scrollback included), for checks that nothing leaked. */
  bufferText() {
    const buffer = this.term.buffer.active;
    const lines = [];
    for (let y = 0; y < buffer.length; y++) lines.push(buffer.getLine(y)?.translateToString(true) ?? "");
    return lines.join("\n");
  }

  /** Scale the font so the recorded terminal size fits the screen's width. */
  fit() {
    const width = this.screen.clientWidth - 24;
    const height = Math.max(320, window.innerHeight - this.screen.getBoundingClientRect().top - 140);
    if (width <= 0) return;
    const byWidth = width / (this.term.cols * 0.6);
    const byHeight = height / (this.term.rows * 1.2);
    const fontSize = Math.max(8, Math.min(18, Math.floor(Math.min(byWidth, byHeight))));
    if (this.term.options.fontSize !== fontSize) this.term.options.fontSize = fontSize;
  }

  #emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #resize(size) {
    this.size = size;
    if (this.term.cols !== size[0] || this.term.rows !== size[1]) {
      this.term.resize(size[0], size[1]);
      this.fit();
    }
  }

  /** Write bytes and resolve once xterm has parsed them. */
  #write(bytes) {
    return new Promise((resolve) => this.term.write(bytes, resolve));
  }

  /** Apply records in order, batching output between resizes. */
  async #apply(records) {
    let batch = [];
    let length = 0;
    const flush = async () => {
      if (!batch.length) return;
      const out = new Uint8Array(length);
      let offset = 0;
      for (const chunk of batch) {
        out.set(chunk, offset);
        offset += chunk.length;
      }
      batch = [];
      length = 0;
      await this.#write(out);
    };
    for (const record of records) {
      if (record.type === RecordType.OUTPUT || record.type === RecordType.KEYFRAME) {
        batch.push(record.data);
        length += record.data.length;
      } else if (record.type === RecordType.RESIZE) {
        const size = sizeOf(record);
        if (size) {
          await flush();
          this.#resize(size);
        }
      }
    }
    await flush();
  }

  /** The terminal size at the start of part `index`: the nearest one known before it. */
  #sizeBefore(index) {
    for (let i = index; i >= 0; i--) if (this.sizes.has(i)) return this.sizes.get(i);
    return DEFAULT_SIZE;
  }

  /** Remember the size at the end of a part (the next part's start). */
  #learnSizes(index, records, start) {
    let size = start;
    for (const r of records) if (r.type === RecordType.RESIZE) size = sizeOf(r) ?? size;
    this.sizes.set(index + 1, size);
  }

  /**
   * Load the part list and show the first frame.
   * @returns {Promise<void>}
   */
  async load() {
    await this.source.refresh();
    if (!this.source.parts.length) {
      this.#emit("empty");
      return;
    }
    await this.seek(this.source.parts[0].t0);
  }

  /**
   * Jump to `t` (ms): one part fetched (the one covering `t`), keyframe, records up to `t`.
   * @param {number} t
   */
  async seek(t) {
    const token = ++this.seekToken;
    const resume = this.playing;
    this.#stopTimer();
    if (!this.source.parts.length) return;
    t = Math.max(0, Math.min(t, this.duration));
    const index = this.source.indexAt(t);
    this.#emit("loading", { loading: true });
    let opened;
    try {
      opened = await this.source.open(index);
    } catch (e) {
      if (token !== this.seekToken) return;
      this.#emit("loading", { loading: false });
      this.#failed(index, e);
      return;
    }
    if (token !== this.seekToken) return;
    let records;
    try {
      records = recordsDecode(opened.plaintext);
    } catch (e) {
      this.#emit("loading", { loading: false });
      this.#failed(index, e);
      return;
    }
    const start = index === 0 ? DEFAULT_SIZE : this.#sizeBefore(index);
    this.#learnSizes(index, records, start);
    this.term.reset();
    this.#resize(start);
    let next = 0;
    while (next < records.length && (records[next].t <= t || records[next].type === RecordType.KEYFRAME)) next++;
    await this.#apply(records.slice(0, next));
    if (token !== this.seekToken) return;
    this.cursor = { index, records, next };
    this.position = t;
    this.#emit("loading", { loading: false });
    this.#emit("frame", { position: t });
    if (resume) this.play();
  }

  /**
   * A part cannot be shown. Nothing from it reached the screen. After a seek
   * the screen is cleared, so what another part left is not mistaken for this
   * part's content; when playing on, the last authentic screen stays.
   */
  #failed(index, error, { clear = true } = {}) {
    const row = this.source.parts[index];
    this.pause();
    if (error?.tampered) {
      if (clear) this.term.reset();
      this.cursor = null;
      this.position = row.t0;
      if (!this.badRanges.some(([a]) => a === row.t0)) this.badRanges.push([row.t0, row.t1]);
      this.#emit("tampered", { seq: row.seq, t0: row.t0, t1: row.t1, error });
    } else {
      this.#emit("error", { seq: row.seq, error });
    }
    this.#emit("frame", { position: this.position });
  }

  play() {
    if (this.playing) return;
    if (!this.cursor || this.position >= this.duration && this.source.complete) {
      // At the end (or after a failure): start again from the beginning.
      this.playing = true;
      this.seek(this.source.parts[0]?.t0 ?? 0);
      return;
    }
    this.playing = true;
    this.lastTick = performance.now();
    this.#emit("play");
    this.#schedule();
  }

  pause() {
    const was = this.playing;
    this.playing = false;
    this.#stopTimer();
    if (was) this.#emit("pause");
  }

  toggle() {
    if (this.playing) this.pause();
    else this.play();
  }

  setSpeed(speed) {
    this.speed = Math.max(SPEEDS[0], Math.min(SPEEDS.at(-1), speed));
    this.#emit("speed", { speed: this.speed });
  }

  #stopTimer() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  #schedule() {
    this.#stopTimer();
    this.timer = setTimeout(() => this.#tick(), TICK_MS);
  }

  /** The next record to play, crossing into the next part (chained) when needed. */
  async #peek() {
    const cursor = this.cursor;
    if (cursor.next < cursor.records.length) return cursor.records[cursor.next];
    const nextIndex = cursor.index + 1;
    if (nextIndex >= this.source.parts.length) return null;
    const token = this.seekToken;
    let opened;
    let records;
    try {
      opened = await this.source.open(nextIndex, { chained: true });
      records = recordsDecode(opened.plaintext, { after: cursor.records.at(-1)?.t ?? 0 });
    } catch (e) {
      if (token === this.seekToken) this.#failed(nextIndex, e, { clear: false });
      return undefined;
    }
    if (token !== this.seekToken || this.cursor !== cursor) return undefined;
    this.#learnSizes(nextIndex, records, this.size);
    // Playing on: the screen is already right, so the keyframe is skipped.
    const skip = opened.header.kf > 0 && records[0]?.type === RecordType.KEYFRAME ? 1 : 0;
    this.cursor = { index: nextIndex, records, next: skip };
    return this.#peek();
  }

  async #tick() {
    if (!this.playing) return;
    const token = this.seekToken;
    const now = performance.now();
    let target = this.position + (now - this.lastTick) * this.speed;
    this.lastTick = now;
    const due = [];
    for (;;) {
      const record = await this.#peek();
      if (token !== this.seekToken || !this.playing) return;
      if (record === undefined) return; // failed (banner shown) or superseded
      if (record === null) {
        // The end of what exists: stop, or wait for a live session's next part.
        target = Math.min(target, this.duration);
        if (!this.live) {
          await this.#apply(due);
          this.position = this.duration;
          this.pause();
          this.#emit("frame", { position: this.position });
          this.#emit("ended");
          return;
        }
        this.waitingForParts = true;
        break;
      }
      this.waitingForParts = false;
      if (this.skipIdle && record.t - this.position > IDLE_CAP_MS && !due.length) {
        // A long pause: jump the clock to just before the next output.
        target = Math.max(target, record.t - IDLE_CAP_MS);
        this.position = record.t - IDLE_CAP_MS;
      }
      if (record.t > target) break;
      due.push(record);
      this.cursor.next += 1;
      if (due.length > 4096) break;
    }
    await this.#apply(due);
    if (token !== this.seekToken || !this.playing) return;
    this.position = Math.min(Math.max(this.position, target), Math.max(this.duration, this.position));
    this.#emit("frame", { position: this.position });
    this.#prefetch();
    this.#schedule();
  }

  /** Fetch the next part in the background while the current one plays. */
  #prefetch() {
    const nextIndex = (this.cursor?.index ?? -1) + 1;
    if (nextIndex < this.source.parts.length && this.cursor.next > this.cursor.records.length / 2) {
      this.source.open(nextIndex, { chained: true }).catch(() => {});
    }
  }

  /** New parts appeared (live session): extend the duration; carry on if waiting. */
  partsAdded() {
    this.#emit("frame", { position: this.position });
  }
}
