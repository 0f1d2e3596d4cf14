/**
 * A record's Session Activity: one row per session (user, timestamp in the
 * viewer's time zone, duration, protocol, status) with Play and Download.
 * Data: GET /api/v1/records/{id}/ and /api/v1/records/{id}/sessions/.
 * @module app/activity
 */

import { api, ApiError } from "./api.js";
import { requireUnlocked } from "./keyring.js";
import { downloadStem, sessionDownload } from "./download.js";
import { h } from "./records.js";

const PAGE_SIZE = 20;
const REFRESH_MS = 5000;
const PROTOCOL_LABELS = { ssh: "SSH", rdp: "RDP", vnc: "VNC", telnet: "Telnet", mysql: "MySQL", postgresql: "PostgreSQL", "sql-server": "SQL Server", http: "RBI" };
const TYPE_LABELS = { pamMachine: "PAM Machine", pamDatabase: "PAM Database", pamDirectory: "PAM Directory", pamRemoteBrowser: "PAM Remote Browsing" };
/** API status → what the row says. */
const STATUS = {
  open: ["live", "Recording now"],
  closing: ["busy", "Finishing"],
  sealed: ["ok", "Complete"],
  incomplete: ["warn", "Incomplete"],
  not_recorded: ["muted", "Not recorded"],
  failed: ["error", "Error"],
};
const DENIED = "You don't have permission to view this record's session recordings (needs the Can view session recordings policy and access to the record).";

const timestamp = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** 1:02:03 / 4:05 style duration. */
export function durationText(ms) {
  if (ms === null || ms === undefined) return "—";
  const s = Math.floor(ms / 1000);
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

function streamOf(session, kind) {
  return session.streams.find((s) => s.stream === kind);
}

/** Entry point of vault/session_activity.html. */
export async function activityPage({ recordId }) {
  const who = await requireUnlocked();
  const body = document.getElementById("sessions-body");
  const empty = document.getElementById("sessions-empty");
  const pager = document.getElementById("sessions-pager");
  const autoRefresh = document.getElementById("auto-refresh");
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  document.getElementById("tz-note").textContent = `Times shown in ${tz.replace(/_/g, " ")}`;
  let page = Number(new URLSearchParams(window.location.search).get("page") || 1);
  let record;
  let timer;
  const busy = new Set(); // sessions downloading now: keep their row as it is

  function denied(message = DENIED) {
    document.getElementById("activity-panel").hidden = true;
    document.getElementById("download-help").hidden = true;
    const box = document.getElementById("denied");
    box.hidden = false;
    if (message !== DENIED) document.getElementById("denied-message").textContent = message;
    document.getElementById("record-name").textContent = record?.name ?? "Session Activity";
    document.getElementById("crumb-record").textContent = record?.name ?? `Record ${recordId}`;
  }

  try {
    record = await api(`/api/v1/records/${recordId}/`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return denied();
    return denied(`The record could not be loaded: ${e.message}`);
  }
  document.title = `${record.name} · Session Activity · keeperpam Vault`;
  document.getElementById("record-name").textContent = record.name;
  document.getElementById("crumb-record").textContent = record.name;
  document.getElementById("record-meta").textContent = [TYPE_LABELS[record.record_type] ?? record.record_type,
    PROTOCOL_LABELS[record.protocol] ?? record.protocol, record.host || record.url, record.folder_name]
    .filter(Boolean).join(" · ");
  if (!record.permissions?.can_view_recordings) return denied();

  async function load() {
    clearTimeout(timer);
    let data;
    try {
      data = await api(`/api/v1/records/${recordId}/sessions/`, { query: { page, page_size: PAGE_SIZE } });
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        if (page > 1) { page = 1; return load(); }
        return denied();
      }
      empty.replaceChildren(h("strong", {}, "Sessions could not be loaded."), h("p", { class: "muted" }, e.message));
      empty.hidden = false;
      return;
    }
    helpExample(data.results.find((s) => streamOf(s, "typescript-zip")?.state === "sealed"));
    const rows = data.results.map((s) => (busy.has(s.id) ? body.querySelector(`tr[data-session-id="${s.id}"]`) : null) ?? row(s));
    body.replaceChildren(...rows);
    empty.hidden = data.count > 0;
    if (data.count === 0) {
      empty.replaceChildren(
        h("div", { class: "empty-icon", "aria-hidden": "true" }, "▶"),
        h("strong", {}, "No sessions yet"),
        h("p", { class: "muted" }, "When someone connects to this record through a gateway, the session appears here, live while it records."),
      );
    }
    document.getElementById("sessions-count").textContent = `${data.count} session${data.count === 1 ? "" : "s"}`;
    pager.hidden = data.count <= PAGE_SIZE;
    const pages = Math.max(1, Math.ceil(data.count / PAGE_SIZE));
    const first = (page - 1) * PAGE_SIZE + 1;
    document.getElementById("sessions-range").textContent = `${first}–${first + data.results.length - 1} of ${data.count}`;
    document.getElementById("sessions-page").textContent = `Page ${page} of ${pages}`;
    document.getElementById("sessions-prev").disabled = !data.previous;
    document.getElementById("sessions-next").disabled = !data.next;
    const live = data.results.some((s) => s.status === "open" || s.status === "closing");
    if (live && autoRefresh.checked) timer = setTimeout(load, REFRESH_MS);
  }

  /** The replay instructions, with this record's real file names. */
  function helpExample(session) {
    const stem = session ? downloadStem(record.name, session.started_at)
      : `${downloadStem(record.name, new Date(0)).replace(/-19700101-000000$/, "")}-YYYYmmdd-HHMMSS`;
    document.querySelector("#download-help pre code").textContent =
      `unzip ${stem}.zip\nscriptreplay --timing ${stem}.tm ${stem}.tys`;
  }

  function row(session) {
    const [tone, label] = STATUS[session.status] ?? ["muted", session.status];
    const started = new Date(session.started_at);
    const live = session.status === "open";
    const duration = live ? h("span", { class: "live-duration", dataset: { since: session.started_at } }, durationText(Date.now() - started))
      : durationText(session.duration_ms);
    const graphical = streamOf(session, "guac");
    const terminal = streamOf(session, "terminal");
    const zip = streamOf(session, "typescript-zip");
    const playable = [graphical, terminal].some((s) => s && (s.parts > 0 || live));
    const actions = h("div", { class: "actions" });
    if (playable) {
      actions.append(h("a", {
        class: "btn btn-sm btn-primary", href: `/records/${recordId}/sessions/${session.id}/play/`,
        title: graphical ? "Play the graphical recording" : "Play the terminal recording",
      }, h("span", { class: "icon-play", "aria-hidden": "true" }), live ? "Watch live" : "Play"));
    }
    if (zip && zip.state === "sealed") {
      const button = h("button", { type: "button", class: "btn btn-sm btn-secondary", title: "Decrypt in this browser and save the typescript (.tys + .tm)" },
        h("span", { class: "icon-download", "aria-hidden": "true" }), "Download");
      const note = h("span", { class: "action-note", role: "status" });
      button.addEventListener("click", async () => {
        button.disabled = true;
        busy.add(session.id);
        note.className = "action-note";
        note.textContent = "Decrypting…";
        try {
          const { name } = await sessionDownload({
            session, record, who,
            onProgress: (done, total) => { note.textContent = `Decrypting ${done}/${total}…`; },
          });
          note.textContent = `Saved ${name}`;
          note.classList.add("ok");
        } catch (e) {
          note.textContent = e.message;
          note.classList.add("error");
        } finally {
          button.disabled = false;
          busy.delete(session.id);
        }
      });
      actions.append(button, note);
    } else if (terminal && (live || session.status === "closing")) {
      actions.append(h("button", { type: "button", class: "btn btn-sm btn-secondary", disabled: true, title: "Available once the session has ended" },
        h("span", { class: "icon-download", "aria-hidden": "true" }), "Download"));
    }
    if (!actions.childElementCount) {
      actions.append(h("span", { class: "muted small" }, session.status === "failed" ? "No recording" : session.status === "not_recorded" ? "Recording off" : "—"));
    }
    const kinds = [graphical && "Graphical", terminal && "Text"].filter(Boolean).join(" + ");
    return h("tr", { dataset: { sessionId: session.id, status: session.status } },
      h("td", {}, h("div", { class: "user-cell" }, h("span", { class: "avatar sm" }, (session.launched_by || "?").slice(0, 1).toUpperCase()), session.launched_by || "—")),
      h("td", {}, h("time", { datetime: session.started_at, title: started.toISOString() }, timestamp.format(started))),
      h("td", { class: "num" }, duration),
      h("td", {}, h("span", { class: "proto" }, PROTOCOL_LABELS[session.protocol] ?? session.protocol), kinds ? h("div", { class: "sub" }, kinds) : null),
      h("td", {}, h("span", { class: `status s-${tone}`, title: session.error || label }, h("i"), label)),
      h("td", { class: "mono small" }, session.client_address || "—"),
      h("td", { class: "col-actions" }, actions),
    );
  }

  // Live rows count up every second without refetching.
  setInterval(() => {
    for (const el of document.querySelectorAll(".live-duration")) el.textContent = durationText(Date.now() - new Date(el.dataset.since));
  }, 1000);
  autoRefresh.addEventListener("change", () => { if (autoRefresh.checked) load(); else clearTimeout(timer); });
  document.getElementById("sessions-prev").addEventListener("click", () => { page -= 1; load(); });
  document.getElementById("sessions-next").addEventListener("click", () => { page += 1; load(); });
  await load();
}
