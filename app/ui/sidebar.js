// The sidebar: the caller's threads grouped by last activity (Today, Yesterday, Earlier), searched
// by title, more loaded on scroll; rename and delete; a drawer on phones, collapsible on desktops.

import { ApiError, api } from "./api.js";
import { newThread, openThread, renderHeader } from "./conversation.js";
import { ago, fullTime, h, icon, plural, titleOf } from "./dom.js";
import { NARROW, report, state, toast, ui } from "./page.js";

const THREAD_PAGE = 30;
const COLLAPSED_KEY = "lma.sidebarCollapsed";

export function upsertThread(thread) {
  state.threads.set(thread.thread_id, thread);
  if (state.thread?.thread_id === thread.thread_id) state.thread = thread;
}

function sortedThreads() {
  const query = state.search.toLowerCase();
  return [...state.threads.values()]
    .filter((thread) => !query || titleOf(thread).toLowerCase().includes(query) || thread.thread_id === query)
    .sort(
      (a, b) =>
        Date.parse(b.last_activity_at) - Date.parse(a.last_activity_at) || (a.thread_id < b.thread_id ? 1 : -1),
    );
}

export async function loadThreads({ reset = false } = {}) {
  if (state.listLoading || (!reset && state.listLoaded && !state.nextCursor)) return;
  state.listLoading = true;
  renderListFooter();
  let loaded = false;
  const search = state.search;
  try {
    const page = await api.listThreads(reset ? undefined : state.nextCursor, THREAD_PAGE, search);
    if (search !== state.search) return; // typed on: a newer search is under way
    if (reset) state.threads.clear();
    page.threads.forEach(upsertThread);
    if (state.thread?.last_activity_at && !state.threads.has(state.thread.thread_id))
      upsertThread(state.thread);
    state.nextCursor = page.next_cursor;
    state.listLoaded = true;
    loaded = true;
    renderThreadList();
  } catch (error) {
    report(error, "Could not load the threads");
  } finally {
    state.listLoading = false;
    renderListFooter();
  }
  // A short first page may not fill the list: keep going until it scrolls or ends.
  if (loaded && state.nextCursor && footerVisible()) loadThreads();
}

function footerVisible() {
  const box = ui.threadScroll.getBoundingClientRect();
  return ui.threadFooter.getBoundingClientRect().top < box.bottom + 200;
}

function renderListFooter() {
  const footer = ui.threadFooter;
  if (state.listLoading) footer.replaceChildren("Loading threads…");
  else if (state.nextCursor)
    footer.replaceChildren(
      h("button", { class: "btn btn-quiet btn-small", type: "button", text: "Load more", onclick: () => loadThreads() }),
    );
  else if (state.listLoaded && sortedThreads().length === 0)
    footer.replaceChildren(state.search ? "No thread title matches." : "No threads yet: start one with New thread.");
  else footer.replaceChildren();
}

/** "Today", "Yesterday" or "Earlier", by the reader's own calendar. */
export function dayGroup(iso, now = new Date()) {
  const day = new Date(iso);
  const midnight = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  if (day >= midnight) return "Today";
  if (day >= new Date(midnight.getTime() - 86_400_000)) return "Yesterday";
  return "Earlier";
}

export function renderThreadList() {
  // Rebuilding drops focus: remember which control had it and give it back afterwards.
  const focused = document.activeElement?.closest?.(".thread-item");
  const focusedRole = document.activeElement?.dataset?.role;
  const focusedId = focused?.dataset.id;
  const groups = new Map();
  for (const thread of sortedThreads()) {
    const group = dayGroup(thread.last_activity_at);
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(threadItem(thread));
  }
  ui.threadList.replaceChildren(
    ...[...groups].map(([group, items], index) =>
      h(
        "li",
        { class: "thread-group" },
        h("h3", { class: "group-heading", id: `group-${index}`, text: group }),
        h("ul", { class: "thread-list", "aria-labelledby": `group-${index}` }, ...items),
      ),
    ),
  );
  if (focusedId) {
    const item = ui.threadList.querySelector(`.thread-item[data-id="${CSS.escape(focusedId)}"]`);
    item?.querySelector(`[data-role="${focusedRole}"]`)?.focus();
  }
  renderListFooter();
}

function threadItem(thread) {
  const current = thread.thread_id === state.thread?.thread_id;
  const title = titleOf(thread);
  const running = thread.status === "busy" || state.running?.threadId === thread.thread_id;
  const waiting = thread.status === "interrupted" && !running;
  return h(
    "li",
    { class: `thread-item${current ? " current" : ""}`, "data-id": thread.thread_id },
    h(
      "button",
      {
        class: "thread-open",
        type: "button",
        "data-role": "open",
        "aria-current": current ? "true" : null,
        title: `${title} (${thread.thread_id})`,
        onclick: () => openThread(thread.thread_id),
      },
      h("span", { class: `thread-title${thread.title ? "" : " untitled"}`, text: title }),
      // Hidden commas, so a screen reader says "title, a turn is running, just now, 3 turns".
      h("span", { class: "visually-hidden", text: ", " }),
      h(
        "span",
        { class: "thread-sub" },
        running ? h("span", { class: "busy-dot", role: "img", "aria-label": "a turn is running" }) : null,
        running ? h("span", { class: "visually-hidden", text: ", " }) : null,
        h("time", {
          datetime: thread.last_activity_at,
          title: fullTime(thread.last_activity_at),
          text: ago(thread.last_activity_at),
        }),
        h("span", { "aria-hidden": "true", text: "·" }),
        h("span", { class: "visually-hidden", text: ", " }),
        // Questions and their answers, not tool steps: one turn is a question and its answer.
        h("span", { text: plural(thread.turn_count ?? 0, "turn") }),
      ),
      // A turn paused for a person's decision (an approval): said in words, not only a colour.
      waiting ? h("span", { class: "visually-hidden", text: ", " }) : null,
      waiting ? h("span", { class: "waiting-mark", text: "Waiting for approval" }) : null,
    ),
    h(
      "div",
      { class: "thread-actions" },
      h(
        "button",
        {
          class: "icon-btn small",
          type: "button",
          "data-role": "rename",
          "aria-label": `Rename “${title}”`,
          onclick: () => renameThread(thread),
        },
        icon("pencil"),
      ),
      h(
        "button",
        {
          class: "icon-btn small danger",
          type: "button",
          "data-role": "delete",
          "aria-label": `Delete “${title}”`,
          onclick: () => deleteThread(thread),
        },
        icon("trash"),
      ),
    ),
  );
}

let searchTimer = null;
function onSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    state.search = ui.threadSearch.value.trim();
    renderThreadList(); // what is loaded filters at once; the service's answer follows
    state.listLoading = false;
    loadThreads({ reset: true });
  }, 200);
}

// ---------------------------------------------------------------------------------------------
// Rename, delete

export function renameThread(thread) {
  const dialog = ui.renameDialog;
  ui.renameInput.value = thread.title ?? "";
  dialog.returnValue = "";
  dialog.onclose = async () => {
    if (dialog.returnValue !== "save") return;
    const title = ui.renameInput.value.trim() || null;
    try {
      const updated = await api.renameThread(thread.thread_id, title);
      upsertThread(updated);
      renderThreadList();
      if (state.thread?.thread_id === updated.thread_id) renderHeader();
      toast("Thread renamed");
    } catch (error) {
      report(error, "Could not rename the thread");
    }
  };
  dialog.showModal();
  ui.renameInput.select();
}

export function deleteThread(thread) {
  const dialog = ui.deleteDialog;
  ui.deleteText.textContent = `“${titleOf(thread)}” and its whole history (every checkpoint and branch) will be deleted. This cannot be undone.`;
  dialog.returnValue = "";
  dialog.onclose = async () => {
    if (dialog.returnValue !== "delete") return;
    try {
      await api.deleteThread(thread.thread_id);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) return report(error, "Could not delete the thread");
    }
    state.threads.delete(thread.thread_id);
    if (state.thread?.thread_id === thread.thread_id) newThread();
    else renderThreadList();
    toast("Thread deleted");
  };
  dialog.showModal();
}

// ---------------------------------------------------------------------------------------------
// The drawer on narrow screens (focus stays inside while it is open); collapse on wide ones

function syncDrawer() {
  const open = ui.app.classList.contains("sidebar-open");
  // Off-canvas content must not be reachable by Tab; while the drawer is open, the page behind is inert.
  ui.sidebar.inert = NARROW.matches && !open;
  ui.main.inert = NARROW.matches && open;
  document.querySelector(".skip-link").inert = NARROW.matches && open;
  ui.scrim.hidden = !(NARROW.matches && open);
  ui.openSidebar.setAttribute("aria-expanded", String(open));
  const collapsed = !NARROW.matches && ui.app.classList.contains("sidebar-collapsed");
  ui.sidebar.hidden = collapsed;
  ui.collapseSidebar.setAttribute("aria-expanded", String(!collapsed));
  ui.collapseSidebar.setAttribute("aria-label", collapsed ? "Show the thread list" : "Hide the thread list");
}

export function openSidebar() {
  ui.app.classList.add("sidebar-open");
  syncDrawer();
  ui.closeSidebar.focus();
}

export function closeSidebar() {
  if (!ui.app.classList.contains("sidebar-open")) return false;
  ui.app.classList.remove("sidebar-open");
  syncDrawer();
  ui.openSidebar.focus();
  return true;
}

function toggleCollapsed() {
  const collapsed = ui.app.classList.toggle("sidebar-collapsed");
  localStorage.setItem(COLLAPSED_KEY, collapsed ? "1" : "");
  syncDrawer();
}

/** Tab and Shift+Tab go round the drawer's own controls while it is open. */
function trapFocus(event) {
  if (event.key !== "Tab" || !NARROW.matches || !ui.app.classList.contains("sidebar-open")) return;
  const focusable = [...ui.sidebar.querySelectorAll("button, input, [href]")].filter(
    (node) => !node.disabled && node.offsetParent !== null,
  );
  const first = focusable[0];
  const last = focusable.at(-1);
  if (!ui.sidebar.contains(document.activeElement)) {
    event.preventDefault();
    first?.focus();
  } else if (event.shiftKey && document.activeElement === first) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && document.activeElement === last) {
    event.preventDefault();
    first.focus();
  }
}

export function initSidebar() {
  if (localStorage.getItem(COLLAPSED_KEY)) ui.app.classList.add("sidebar-collapsed");
  ui.openSidebar.addEventListener("click", openSidebar);
  ui.collapseSidebar.addEventListener("click", toggleCollapsed);
  ui.closeSidebar.addEventListener("click", closeSidebar);
  ui.scrim.addEventListener("click", closeSidebar);
  ui.threadSearch.addEventListener("input", onSearch);
  document.addEventListener("keydown", trapFocus);
  NARROW.addEventListener("change", syncDrawer);
  new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && loadThreads(), {
    root: ui.threadScroll,
    rootMargin: "200px",
  }).observe(ui.threadFooter);
  // Keep "5 minutes ago" (and the day groups) true without reloading anything.
  setInterval(renderThreadList, 60_000);
  syncDrawer();
}
