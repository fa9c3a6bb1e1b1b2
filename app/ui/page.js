// What every part of the page shares: its elements, its state, and how it tells the user
// something (banner, toast, live announcement) or that the service is gone.

import { ApiError, NetworkError, api } from "./api.js";

const $ = (id) => document.getElementById(id);

export const NARROW = window.matchMedia("(max-width: 800px)");

export const ui = {
  app: document.querySelector(".app"),
  main: document.querySelector(".main"),
  sidebar: $("sidebar"),
  scrim: $("scrim"),
  openSidebar: $("open-sidebar"),
  closeSidebar: $("close-sidebar"),
  collapseSidebar: $("collapse-sidebar"),
  newThread: $("new-thread"),
  openForm: $("open-form"),
  openInput: $("open-input"),
  openError: $("open-error"),
  threadSearch: $("thread-search"),
  threadScroll: $("thread-scroll"),
  threadList: $("thread-list"),
  threadFooter: $("thread-footer"),
  title: $("thread-title"),
  idBox: $("thread-id-box"),
  newHint: $("new-hint"),
  threadId: $("thread-id"),
  copyId: $("copy-id"),
  branchChip: $("branch-chip"),
  historyBtn: $("history-btn"),
  renameBtn: $("rename-btn"),
  deleteBtn: $("delete-btn"),
  banner: $("banner"),
  bannerText: $("banner-text"),
  bannerClose: $("banner-close"),
  transcript: $("transcript"),
  loadEarlier: $("load-earlier"),
  welcome: $("welcome"),
  messages: $("messages"),
  jumpLatest: $("jump-latest"),
  announcer: $("announcer"),
  history: $("history"),
  closeHistory: $("close-history"),
  timeline: $("timeline"),
  historyStatus: $("history-status"),
  snapshotBar: $("snapshot-bar"),
  snapshotText: $("snapshot-text"),
  backToLatest: $("back-to-latest"),
  composer: $("composer"),
  input: $("composer-input"),
  send: $("send-btn"),
  stop: $("stop-btn"),
  renameDialog: $("rename-dialog"),
  renameInput: $("rename-input"),
  deleteDialog: $("delete-dialog"),
  deleteText: $("delete-text"),
  toast: $("toast"),
};

export const state = {
  threads: new Map(), // thread_id -> thread, as the API returns it
  nextCursor: null,
  listLoaded: false,
  listLoading: false,
  search: "", // the sidebar's search over titles
  thread: null, // the open thread; null for a new thread not yet sent
  messages: [], // the transcript on screen (live branch, or the snapshot being viewed)
  earlierCursor: null,
  tree: null, // the open thread's checkpoints (tree.js)
  questions: new Map(), // checkpoint_id -> the question of its turn
  viewing: null, // the checkpoint whose snapshot is on screen, or null for the live transcript
  running: null, // the run this page follows on the open thread (runs.js), or null
  remoteBusy: false, // the open thread is busy and this page cannot follow the run (yet)
  offline: false,
  view: 0, // bumped whenever the open thread changes, so late answers for the old one are dropped
  feedback: new Map(), // run_id -> "up" | "down": the ratings given to the open thread's turns
};

/** Whether a turn runs on the open thread (ours or another client's): no second one now. */
export const busy = () => state.running !== null || state.remoteBusy;

// ---------------------------------------------------------------------------------------------
// Banner, toast, announcements

let bannerKey = null;

export function showBanner(kind, text, { key = kind, dismissible = false } = {}) {
  bannerKey = key;
  ui.banner.dataset.kind = kind;
  ui.banner.setAttribute("role", kind === "error" ? "alert" : "status");
  ui.bannerText.textContent = text;
  ui.bannerClose.hidden = !dismissible;
  ui.banner.hidden = false;
}

/** Hide the banner if it says `key` (any banner but the offline one when no key is given). */
export function hideBanner(key = null) {
  if (key === null ? bannerKey === "offline" : key !== bannerKey) return;
  bannerKey = null;
  ui.banner.hidden = true;
}

let toastTimer = null;
export function toast(text) {
  ui.toast.textContent = text;
  ui.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (ui.toast.hidden = true), 3200);
}

/** Say something to a screen reader once (a completed answer, a stopped turn). */
let announceTimer = null;
export function announce(text) {
  ui.announcer.textContent = "";
  clearTimeout(announceTimer);
  // A new text node in a cleared live region is announced even when the text repeats; it goes
  // again once said, so the page holds no stale copy of the conversation.
  requestAnimationFrame(() => (ui.announcer.textContent = text));
  announceTimer = setTimeout(() => (ui.announcer.textContent = ""), 10_000);
}

// ---------------------------------------------------------------------------------------------
// The service being unreachable: one banner that stays until it is back

const reconnectHooks = [];

/** Call `hook()` each time the service can be reached again after it could not. */
export function onReconnect(hook) {
  reconnectHooks.push(hook);
}

export function setOffline(offline) {
  if (offline === state.offline) {
    if (offline) showOfflineBanner(); // whatever replaced it, the service is still gone
    return;
  }
  state.offline = offline;
  if (offline) {
    showOfflineBanner();
    const probe = async () => {
      try {
        await api.health();
        setOffline(false);
      } catch {
        setTimeout(probe, 2000);
      }
    };
    setTimeout(probe, 2000);
    return;
  }
  hideBanner("offline");
  toast("Connected again");
  for (const hook of reconnectHooks) hook();
}

function showOfflineBanner() {
  showBanner(
    "error",
    "The service can't be reached. Nothing you typed is lost; the page retries every few seconds.",
    { key: "offline" },
  );
}

/** Show what went wrong in words a person can act on. */
export function report(error, doing) {
  if (error instanceof NetworkError) return setOffline(true);
  if (!(error instanceof ApiError)) {
    console.error(error); // a bug in this page: keep it visible to whoever debugs it
    return showBanner("error", `${doing}: ${error.message}`, { dismissible: true });
  }
  if (error.code === "database_unavailable") {
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
    return showBanner("warn", `The database is unavailable right now.${wait}`, {
      key: "database",
      dismissible: true,
    });
  }
  if (error.status === 401)
    return showBanner("error", `You are not signed in: ${error.message}`, { key: "auth" });
  showBanner("error", `${doing}: ${error.message}`, { dismissible: true });
}
