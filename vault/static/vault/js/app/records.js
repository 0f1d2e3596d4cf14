/**
 * The records list: search, filters (type, protocol, folder), pagination,
 * and each row's overflow menu → Session Activity. Data: GET /api/v1/records/.
 * @module app/records
 */

import { api, apiAll } from "./api.js";
import { requireUnlocked } from "./keyring.js";

const PAGE_SIZE = 25;
const TYPE_LABELS = { pamMachine: "PAM Machine", pamDatabase: "PAM Database", pamDirectory: "PAM Directory", pamRemoteBrowser: "PAM Remote Browsing" };
const PROTOCOL_LABELS = { ssh: "SSH", rdp: "RDP", vnc: "VNC", telnet: "Telnet", mysql: "MySQL", postgresql: "PostgreSQL", "sql-server": "SQL Server", http: "RBI" };

/** A DOM element from a tag, attributes and children (text is never parsed as HTML). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) el.append(child);
  }
  return el;
}

/** Close any open overflow menu when clicking elsewhere or pressing Escape. */
export function menusInstall() {
  const closeAll = (except) => document.querySelectorAll(".menu.open").forEach((m) => m !== except && m.classList.remove("open"));
  document.addEventListener("click", (e) => { if (!e.target.closest(".menu")) closeAll(); });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeAll(); });
  return closeAll;
}

function recordingBadges(record) {
  const out = [];
  if (record.graphical_recording) out.push(h("span", { class: "tag" }, "Graphical"));
  if (record.text_recording) out.push(h("span", { class: "tag" }, "Text"));
  return out.length ? out : [h("span", { class: "muted" }, "Off")];
}

function typeIcon(type) {
  const letter = { pamMachine: "M", pamDatabase: "D", pamDirectory: "A", pamRemoteBrowser: "B" }[type] ?? "?";
  return h("span", { class: `type-icon t-${type}`, "aria-hidden": "true" }, letter);
}

/** Entry point of vault/records.html. */
export async function recordsPage() {
  await requireUnlocked();
  const form = document.getElementById("filters");
  const body = document.getElementById("records-body");
  const empty = document.getElementById("records-empty");
  const pager = document.getElementById("records-pager");
  const folderSelect = document.getElementById("filter-folder");
  const closeAll = menusInstall();
  const params = new URLSearchParams(window.location.search);
  let page = Number(params.get("page") || 1);
  for (const name of ["search", "record_type", "protocol", "folder"]) {
    if (params.get(name)) form.elements[name].value = params.get(name);
  }

  // Folder choices: the folders the caller may list, plus those of the records it sees
  // (a record shared directly can sit in a folder the caller is no member of).
  const folders = new Map();
  function foldersAdd(pairs) {
    let added = false;
    for (const [id, name] of pairs) {
      if (id === null || id === undefined || folders.has(String(id))) continue;
      folders.set(String(id), name);
      added = true;
    }
    if (!added) return;
    const chosen = folderSelect.value || params.get("folder") || "";
    folderSelect.replaceChildren(h("option", { value: "" }, "All folders"),
      ...[...folders].sort((a, b) => a[1].localeCompare(b[1])).map(([id, name]) => h("option", { value: id }, name)));
    folderSelect.value = folders.has(chosen) ? chosen : "";
  }
  apiAll("/api/v1/folders/").then((rows) => foldersAdd(rows.map((f) => [f.id, f.name]))).catch(() => {});

  let controller;
  async function load() {
    controller?.abort();
    controller = new AbortController();
    const query = {
      search: form.elements.search.value.trim(), record_type: form.elements.record_type.value,
      protocol: form.elements.protocol.value, folder: form.elements.folder.value,
    };
    const shown = new URLSearchParams(Object.entries({ ...query, page: page > 1 ? page : "" }).filter(([, v]) => v));
    history.replaceState(null, "", shown.toString() ? `?${shown}` : window.location.pathname);
    let data;
    try {
      data = await api("/api/v1/records/", { query: { ...query, page, page_size: PAGE_SIZE }, signal: controller.signal });
    } catch (e) {
      if (e.name === "AbortError") return;
      if (e.status === 404 && page > 1) { page = 1; return load(); }
      body.replaceChildren();
      empty.replaceChildren(h("strong", {}, "Records could not be loaded."), h("p", {}, e.message));
      empty.hidden = false;
      return;
    }
    foldersAdd(data.results.map((r) => [r.folder, r.folder_name]));
    body.replaceChildren(...data.results.map(row));
    const filtered = Object.values(query).some(Boolean);
    empty.hidden = data.count > 0;
    if (data.count === 0) {
      empty.replaceChildren(
        h("strong", {}, filtered ? "No records match these filters." : "No records yet."),
        h("p", { class: "muted" }, filtered ? "Try another search or reset the filters."
          : "Records shared with you, directly or through a shared folder, appear here."),
      );
    }
    pager.hidden = data.count === 0;
    const pages = Math.max(1, Math.ceil(data.count / PAGE_SIZE));
    const first = (page - 1) * PAGE_SIZE + 1;
    document.getElementById("records-count").textContent =
      `${first}–${first + data.results.length - 1} of ${data.count} record${data.count === 1 ? "" : "s"}`;
    document.getElementById("records-page").textContent = `Page ${page} of ${pages}`;
    document.getElementById("records-prev").disabled = !data.previous;
    document.getElementById("records-next").disabled = !data.next;
  }

  function row(record) {
    const activity = `/records/${record.id}/sessions/`;
    const menu = h("div", { class: "menu" },
      h("button", {
        type: "button", class: "menu-button", "aria-haspopup": "menu", "aria-label": `Actions for ${record.name}`,
        onclick: (e) => { e.stopPropagation(); closeAll(menu); menu.classList.toggle("open"); },
      }, "⋮"),
      h("div", { class: "menu-items", role: "menu" },
        h("a", { href: activity, role: "menuitem" }, "Session Activity"),
        h("button", {
          type: "button", role: "menuitem",
          onclick: () => { navigator.clipboard?.writeText(record.host || record.url || ""); closeAll(); },
        }, "Copy host"),
      ));
    const canView = record.permissions?.can_view_recordings;
    return h("tr", { dataset: { recordId: record.id } },
      h("td", {}, h("div", { class: "name-cell" }, typeIcon(record.record_type),
        h("div", {}, canView ? h("a", { href: activity, class: "rec-name" }, record.name) : h("span", { class: "rec-name" }, record.name),
          record.configuration_name ? h("div", { class: "sub" }, record.configuration_name) : null))),
      h("td", {}, TYPE_LABELS[record.record_type] ?? record.record_type),
      h("td", {}, h("span", { class: "proto" }, PROTOCOL_LABELS[record.protocol] ?? record.protocol)),
      h("td", { class: "mono" }, record.host ? `${record.host}${record.port ? `:${record.port}` : ""}` : record.url || "—"),
      h("td", {}, record.folder_name ? h("span", { class: "folder" }, record.folder_name) : h("span", { class: "muted" }, "—")),
      h("td", {}, recordingBadges(record)),
      h("td", { class: "col-menu" }, menu),
    );
  }

  let timer;
  form.addEventListener("input", (e) => {
    page = 1;
    clearTimeout(timer);
    timer = setTimeout(load, e.target.name === "search" ? 250 : 0);
  });
  form.addEventListener("submit", (e) => { e.preventDefault(); page = 1; load(); });
  document.getElementById("filters-reset").addEventListener("click", () => { form.reset(); page = 1; load(); });
  document.getElementById("records-prev").addEventListener("click", () => { page -= 1; load(); });
  document.getElementById("records-next").addEventListener("click", () => { page += 1; load(); });
  await load();
}
