/**
 * Graphical player for `guac` streams on guacamole-common-js 1.5.0's
 * `Guacamole.SessionRecording`.
 *
 * 1.5.0's Blob input is broken (the constructor parses an undefined
 * `recordingBlob`), so the recording is fed through a tunnel instead: the
 * player opens the parts in order (each verified and chained to the one
 * before), parses the decrypted instructions and hands them to the
 * recording as if they arrived from guacd. SessionRecording then keeps its
 * own index of frames and keyframes, so seeking inside what is loaded is
 * instant.
 *
 * Graphical parts have no keyframes (FORMAT.md: optional in v1): a frame
 * depends on everything before it, so the parts are loaded from the start,
 * in the background, while playback already runs; seeking past what is
 * loaded waits for it. A part that fails verification stops loading there.
 * @module players/guac
 */

import Guacamole from "guacamole-common-js";

const decoder = () => new TextDecoder("utf-8");

export class GuacPlayer extends EventTarget {
  /**
   * @param {object} p
   * @param {import("./parts.js").PartSource} p.source
   * @param {HTMLElement} p.screen
   */
  constructor({ source, screen }) {
    super();
    this.source = source;
    this.screen = screen;
    this.live = false;
    this.playing = false;
    this.loadedIndex = -1; // last part fed to the recording
    this.loadedT = 0;
    this.stopped = null; // the error that stopped loading, if any
    this.badRanges = [];
    this.pendingSeek = null;
    this.speed = 1;

    this.tunnel = new Guacamole.Tunnel();
    this.tunnel.connect = () => this.tunnel.setState(Guacamole.Tunnel.State.OPEN);
    this.tunnel.disconnect = () => {};
    this.tunnel.sendMessage = () => {};
    this.recording = new Guacamole.SessionRecording(this.tunnel);
    this.parser = new Guacamole.Parser();
    this.parser.oninstruction = (opcode, args) => this.tunnel.oninstruction(opcode, args);
    this.text = decoder();

    const display = this.recording.getDisplay();
    this.display = display;
    const element = display.getElement();
    element.classList.add("kp-guac-display");
    screen.append(element);
    display.onresize = () => this.fit();
    new ResizeObserver(() => this.fit()).observe(screen);

    this.recording.onplay = () => {
      this.playing = true;
      this.#emit("play");
    };
    this.recording.onpause = () => {
      this.playing = false;
      this.#emit("pause");
      this.#emit("frame", { position: this.position });
    };
    this.recording.onseek = (position) => this.#emit("frame", { position });
    this.recording.onerror = (message) => this.#emit("error", { error: new Error(message) });
    this.recording.onload = () => {}; // the tunnel "closes" after every part; see #flushBlob
    this.recording.connect();
    this.timer = setInterval(() => {
      if (this.playing) this.#emit("frame", { position: this.position });
    }, 200);
  }

  get duration() {
    return this.source.duration;
  }

  get position() {
    return this.recording.getPosition();
  }

  /** Scale the remote display to fit the screen, never above 1:1. */
  fit() {
    const width = this.display.getWidth();
    const height = this.display.getHeight();
    if (!width || !height) return;
    const boxWidth = this.screen.clientWidth;
    const boxHeight = Math.max(320, window.innerHeight - this.screen.getBoundingClientRect().top - 130);
    const scale = Math.min(1, boxWidth / width, boxHeight / height);
    this.display.scale(scale);
    this.screen.style.height = `${Math.ceil(height * scale)}px`;
  }

  #emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /**
   * SessionRecording (1.5.0) copies tunnel instructions into its Blob only in
   * 256 KiB blocks, and the rest when the tunnel closes: frames in the rest
   * cannot be replayed yet. Its close handler only appends that rest and calls
   * onload (ignored here), so calling it after each part makes every loaded
   * frame seekable while the tunnel stays usable for later parts.
   */
  #flushBlob() {
    this.tunnel.onstatechange?.(Guacamole.Tunnel.State.CLOSED);
  }

  /** Load the part list, then every part in order in the background. */
  async load() {
    await this.source.refresh();
    if (!this.source.parts.length) {
      this.#emit("empty");
      return;
    }
    await this.#loadNext(); // the first frame
    this.#emit("frame", { position: 0 });
    this.loading = this.#loadRest();
  }

  async #loadNext() {
    const index = this.loadedIndex + 1;
    if (index >= this.source.parts.length || this.stopped) return false;
    this.#emit("loading", { loading: true, progress: this.loadedT / Math.max(1, this.duration) });
    let opened;
    try {
      opened = await this.source.open(index, { chained: true });
    } catch (e) {
      const row = this.source.parts[index];
      this.stopped = e;
      if (e.tampered) {
        this.badRanges.push([row.t0, this.duration]);
        this.#emit("tampered", { seq: row.seq, t0: row.t0, t1: row.t1, error: e });
      } else {
        this.#emit("error", { seq: row.seq, error: e });
      }
      this.#emit("loading", { loading: false });
      return false;
    }
    const final = opened.header.final;
    this.parser.receive(this.text.decode(opened.plaintext, { stream: !final }));
    this.#flushBlob();
    this.loadedIndex = index;
    this.loadedT = opened.header.t1;
    // A part is needed once: the recording's Blob holds it now, so drop it from the cache.
    this.source.cache.map.delete(opened.header.seq);
    this.#emit("loaded", { t: this.loadedT, progress: this.loadedT / Math.max(1, this.duration) });
    this.#runPendingSeek();
    return true;
  }

  async #loadRest() {
    while (await this.#loadNext()) {
      // yield to the page between parts so playback stays smooth
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    this.#emit("loading", { loading: false });
  }

  /** New parts appeared (live session): load them. */
  partsAdded() {
    if (!this.stopped && (!this.loadingMore)) {
      this.loadingMore = this.#loadRest().finally(() => {
        this.loadingMore = null;
      });
    }
    this.#emit("frame", { position: this.position });
  }

  play() {
    if (this.position >= this.recording.getDuration() && this.recording.getDuration() > 0 && !this.live) {
      this.seek(0).then(() => this.recording.play());
      return;
    }
    this.recording.play();
  }

  pause() {
    this.recording.pause();
  }

  toggle() {
    if (this.recording.isPlaying()) this.pause();
    else this.play();
  }

  setSpeed() {
    // SessionRecording plays in real time only.
  }

  /**
   * Seek to `t` ms; waits until the parts up to `t` are loaded.
   * @param {number} t
   * @returns {Promise<void>} once the display shows `t`
   */
  seek(t) {
    t = Math.max(0, Math.min(t, this.duration));
    return new Promise((resolve) => {
      if (this.pendingSeek) this.pendingSeek.resolve();
      this.pendingSeek = { t, resolve };
      this.#runPendingSeek();
    });
  }

  #runPendingSeek() {
    const pending = this.pendingSeek;
    if (!pending) return;
    const reachable = this.stopped ? this.recording.getDuration() : pending.t;
    const loadedEnough = this.loadedT >= pending.t || this.loadedIndex === this.source.parts.length - 1 || this.stopped;
    if (!loadedEnough) {
      this.#emit("loading", { loading: true, progress: this.loadedT / Math.max(1, this.duration) });
      return;
    }
    this.pendingSeek = null;
    this.recording.seek(Math.min(pending.t, reachable), () => {
      this.display.flush(() => {
        this.#emit("frame", { position: this.position });
        pending.resolve();
      });
    });
  }

  /** SHA-256 of the display's pixels (tests compare seek and straight replay). */
  async displayHash() {
    return canvasHash(this.display.flatten());
  }

  /**
   * Replay the loaded parts straight (no SessionRecording, no keyframes) into
   * a fresh client up to the frame at `position`, and hash its pixels: what
   * the display must show after a seek to `position`.
   * @param {number} position ms, relative to the first frame
   */
  async straightHash(position) {
    const tunnel = new Guacamole.Tunnel();
    tunnel.connect = () => tunnel.setState(Guacamole.Tunnel.State.OPEN);
    tunnel.sendMessage = () => {};
    tunnel.disconnect = () => {};
    const client = new Guacamole.Client(tunnel);
    client.connect();
    const parser = new Guacamole.Parser();
    const text = decoder();
    let origin = null;
    let done = false;
    // A frame is the instructions up to and including its sync: deliver whole frames only.
    let frame = [];
    parser.oninstruction = (opcode, args) => {
      if (done) return;
      frame.push([opcode, args.slice()]); // the parser reuses its args array
      if (opcode !== "sync") return;
      const ts = parseInt(args[0], 10);
      if (origin === null) origin = ts;
      if (ts - origin > position) {
        done = true;
        return;
      }
      for (const [op, a] of frame) tunnel.oninstruction(op, a);
      frame = [];
    };
    for (let i = 0; i <= this.loadedIndex && !done; i++) {
      const opened = await this.source.open(i);
      parser.receive(text.decode(opened.plaintext, { stream: true }));
    }
    const display = client.getDisplay();
    await new Promise((resolve) => display.flush(resolve));
    return canvasHash(display.flatten());
  }
}

async function canvasHash(canvas) {
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const digest = await crypto.subtle.digest("SHA-256", pixels);
  const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return { hash: hex, width: canvas.width, height: canvas.height };
}
