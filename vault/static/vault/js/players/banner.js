/**
 * The player's banners: tampered, incomplete, live, errors. One banner per
 * kind; showing a kind again replaces its text.
 * @module players/banner
 */

const ICONS = {
  tampered: "⚠",
  incomplete: "◐",
  live: "●",
  error: "✕",
  info: "i",
};

/**
 * Show (or update) the banner of `kind` in `container`.
 * @param {HTMLElement} container
 * @param {"tampered"|"incomplete"|"live"|"error"|"info"} kind
 * @param {string} title short, bold
 * @param {string} [detail] one sentence of what it means for the viewer
 * @returns {HTMLElement}
 */
export function bannerShow(container, kind, title, detail = "") {
  let el = container.querySelector(`[data-banner="${kind}"]`);
  if (!el) {
    el = document.createElement("div");
    el.dataset.banner = kind;
    el.className = `kp-banner kp-banner-${kind}`;
    el.setAttribute("role", kind === "tampered" || kind === "error" ? "alert" : "status");
    el.innerHTML = '<span class="kp-banner-icon" aria-hidden="true"></span><div><strong></strong><span></span></div>';
    container.append(el);
  }
  el.querySelector(".kp-banner-icon").textContent = ICONS[kind] ?? "";
  el.querySelector("strong").textContent = title;
  el.querySelector("span:last-child").textContent = detail ? ` ${detail}` : "";
  return el;
}

/**
 * Remove the banner of `kind`, if shown.
 * @param {HTMLElement} container
 * @param {string} kind
 */
export function bannerHide(container, kind) {
  container.querySelector(`[data-banner="${kind}"]`)?.remove();
}

/**
 * mm:ss or h:mm:ss of a time in ms.
 * @param {number} ms
 * @returns {string}
 */
export function clock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}
