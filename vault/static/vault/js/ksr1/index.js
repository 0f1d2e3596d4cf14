/**
 * KSR1 sealed recordings in the browser: everything FORMAT.md specifies,
 * on WebCrypto and @hpke/core.
 *
 *   import * as ksr1 from "ksr1";   // via the import map in vault/_importmap.html
 *
 * @module ksr1
 */

export * from "./b64u.js";
export * from "./errors.js";
export * from "./format.js";
export * from "./keys.js";
export * from "./terminal.js";
