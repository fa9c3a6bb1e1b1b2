// The open conversation: its header, its transcript, opening and leaving threads, and noticing
// when another tab or client moved the thread on (the page then follows or reloads it).

import { ApiError, NetworkError, api } from "./api.js";
import { pendingInterrupts, syncApprovals } from "./approvals.js";
import { loadDraft } from "./composer.js";
import { h, shortTime, titleOf } from "./dom.js";
import { closeHistory, loadHistory, renderTimeline } from "./history.js";
import { renderMessages } from "./messages.js";
import { busy, hideBanner, report, setOffline, showBanner, state, ui } from "./page.js";
import { followActiveRun, renderFailedTurn } from "./runs.js";
import { closeSidebar, renderThreadList, upsertThread } from "./sidebar.js";
import { stoppable } from "./stop.js";

const MESSAGE_PAGE = 100;
const WATCH_IDLE_MS = 3000; // how often an open, idle thread asks whether its head moved
const WATCH_BUSY_MS = 1500; // ... and a thread busy with a run this page cannot follow

// ---------------------------------------------------------------------------------------------
// Header, controls, branch indicator, snapshot bar

export function renderHeader() {
  const thread = state.thread;
  ui.title.textContent = thread ? titleOf(thread) : "New thread";
  document.title = `${thread ? titleOf(thread) : "New thread"} · Memory agent`;
  ui.idBox.hidden = !thread;
  ui.newHint.hidden = Boolean(thread);
  ui.threadId.textContent = thread?.thread_id ?? "";
  renderControls();
  renderBranch();
}

export function renderControls() {
  const own = stoppable(); // this page's run (a question or a decision): Stop cancels it
  const noThread = !state.thread;
  // The box stays open while a turn runs: the next question can be written meanwhile.
  ui.send.hidden = own;
  ui.stop.hidden = !own;
  ui.stop.disabled = Boolean(state.running?.stopping);
  ui.send.disabled = busy();
  ui.messages.setAttribute("aria-busy", String(state.running !== null));
  ui.renameBtn.disabled = noThread || busy();
  ui.deleteBtn.disabled = noThread || busy();
  ui.historyBtn.disabled = noThread;
  for (const button of ui.timeline.querySelectorAll("button")) button.disabled = busy();
  for (const button of document.querySelectorAll(".suggestion, .msg-actions button, .turn-error button, .approval button"))
    button.disabled = busy();
  ui.backToLatest.disabled = busy();
  ui.input.placeholder = own
    ? "The answer is on its way: Escape or Stop cancels it…"
    : busy()
      ? "Another turn is running on this thread…"
      : pendingInterrupts().length
        ? "This thread waits for your decision on the card above…"
        : state.viewing
        ? state.viewing.children > 0
          ? `Continue from turn ${state.viewing.turn}: this starts a new branch…`
          : `Continue branch ${state.viewing.branch} from its latest turn…`
        : "Ask about the latest threats…";
}

export function renderBranch() {
  const tree = state.tree;
  if (!state.thread || !tree || !tree.head) {
    ui.branchChip.hidden = true;
    return;
  }
  const node = state.viewing ?? tree.head;
  ui.branchChip.className = `chip branch-${node.branch % 6}`;
  ui.branchChip.textContent = state.viewing
    ? `Viewing turn ${node.turn} · branch ${node.branch} of ${tree.branchCount}`
    : `Branch ${node.branch} of ${tree.branchCount}`;
  ui.branchChip.title = "Each fork from an earlier checkpoint starts a new branch; the page follows the thread's head.";
  ui.branchChip.hidden = false;
}

export function renderSnapshotBar() {
  const node = state.viewing;
  ui.snapshotBar.hidden = !node;
  if (node) {
    // At a branch's tip a message continues that branch; anywhere else it starts a new one.
    const next =
      node.children > 0
        ? " Send a message to continue from here on a new branch."
        : " Send a message to continue this branch.";
    ui.snapshotText.textContent =
      `You are looking at turn ${node.turn} of branch ${node.branch} as it was on ${shortTime(node.created_at)}.` + next;
  }
  renderControls();
  renderBranch();
}

// ---------------------------------------------------------------------------------------------
// The transcript

export function renderTranscript({ keepScroll = false } = {}) {
  const fromBottom = ui.transcript.scrollHeight - ui.transcript.scrollTop;
  renderMessages(ui.messages, state.messages);
  // A turn streaming in stays below what is stored (earlier messages may have just been loaded).
  const live = state.running && !state.running.ended ? state.running.live : null;
  if (live) ui.messages.append(...[live.question, live.turn.root].filter(Boolean));
  renderFailedTurn();
  ui.welcome.hidden = state.messages.length > 0 || state.running !== null || ui.messages.childElementCount > 0;
  ui.loadEarlier.hidden = !state.earlierCursor || state.viewing !== null;
  if (keepScroll) ui.transcript.scrollTop = ui.transcript.scrollHeight - fromBottom;
  else scrollToBottom(true);
  renderControls();
}

const nearBottom = () => {
  const box = ui.transcript;
  return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
};

export function scrollToBottom(force = false) {
  // Follow the stream only while the reader is at the bottom; never yank them back up.
  if (force || nearBottom()) ui.transcript.scrollTop = ui.transcript.scrollHeight;
  syncJumpButton();
}

/** "Jump to latest" shows while the reader is scrolled up from a conversation that goes on below. */
function syncJumpButton() {
  ui.jumpLatest.hidden = nearBottom();
}

async function loadEarlier() {
  const thread = state.thread;
  if (!thread || !state.earlierCursor) return;
  ui.loadEarlier.disabled = true;
  try {
    const page = await api.messages(thread.thread_id, state.earlierCursor, MESSAGE_PAGE);
    if (state.thread !== thread || state.viewing) return;
    state.messages = [...page.messages, ...state.messages];
    state.earlierCursor = page.next_cursor;
    renderTranscript({ keepScroll: true });
  } catch (error) {
    report(error, "Could not load earlier messages");
  } finally {
    ui.loadEarlier.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Opening threads (URL: #thread=<id>, so reload and the back button keep the place)

export function threadFromHash() {
  const match = location.hash.match(/^#thread=(.+)$/);
  return match ? decodeURIComponent(match[1]) : null;
}

export function setHash(id, push) {
  const target = id ? `#thread=${encodeURIComponent(id)}` : location.pathname + location.search;
  if (id ? location.hash === target : !location.hash) return;
  if (push) history.pushState(null, "", target);
  else history.replaceState(null, "", target);
}

function leaveThread() {
  state.view += 1;
  stopWatching();
  // Stop reading a running turn's stream; the turn itself runs on in the service, and coming
  // back to the thread rejoins it.
  state.running?.controller?.abort();
  state.running = null;
  state.remoteBusy = false;
  state.viewing = null;
  state.tree = null;
  state.questions = new Map();
  state.earlierCursor = null;
  hideBanner("busy");
  renderSnapshotBar();
}

export function newThread() {
  leaveThread();
  state.thread = null;
  state.messages = [];
  state.feedback = new Map();
  setHash(null, true);
  loadDraft(null);
  renderHeader();
  renderTranscript();
  renderTimeline();
  renderThreadList();
  closeHistory();
  closeSidebar();
  ui.input.focus();
}

export async function openThread(id, { push = true } = {}) {
  leaveThread();
  const view = state.view;
  setHash(id, push);
  closeSidebar();
  state.thread = state.threads.get(id) ?? { thread_id: id, title: null };
  state.messages = [];
  loadDraft(id);
  renderHeader();
  renderThreadList();
  ui.welcome.hidden = true;
  ui.messages.replaceChildren(h("p", { class: "list-footer", text: "Loading the conversation…" }));
  try {
    await loadConversation(id);
    if (view !== state.view) return;
    watchThread();
    // A running turn is shown live while the history loads beside it.
    followActiveRun();
    await loadHistory();
  } catch (error) {
    if (view !== state.view) return;
    if (error instanceof ApiError && error.status === 404) {
      state.threads.delete(id);
      newThread();
      showBanner("error", `There is no thread “${id}” for you: it was deleted, or belongs to someone else.`, {
        dismissible: true,
      });
      return;
    }
    // Say where the conversation is rather than showing an empty thread; it loads once it can.
    ui.messages.replaceChildren(
      h("p", {
        class: "list-footer",
        text:
          error instanceof NetworkError
            ? "This conversation loads as soon as the service can be reached again."
            : "This conversation could not be loaded.",
      }),
    );
    report(error, "Could not open the thread");
  }
}

let conversationLoads = 0; // the latest load wins: an older answer arriving late is dropped

/** The open thread and its latest messages, from the service. */
async function loadConversation(id) {
  const view = state.view;
  const load = ++conversationLoads;
  const [thread, page, rated] = await Promise.all([
    api.getThread(id),
    api.messages(id, undefined, MESSAGE_PAGE),
    api.feedback(id),
  ]);
  if (view !== state.view || load !== conversationLoads) return;
  // The open thread shown again (a turn ended): a reader scrolled up stays where they read.
  const reading = state.thread?.thread_id === id && ui.messages.childElementCount > 0 && !nearBottom();
  upsertThread(thread);
  state.thread = thread;
  state.feedback = new Map(rated.feedback.map((f) => [f.run_id, f.rating]));
  state.messages = page.messages;
  state.earlierCursor = page.next_cursor;
  renderHeader();
  renderTranscript({ keepScroll: reading });
  renderThreadList();
}

/** Show the thread as the service has it now (a turn was saved here or elsewhere). */
export async function refreshThread() {
  const thread = state.thread;
  if (!thread) return;
  const view = state.view;
  try {
    if (state.viewing) {
      upsertThread(await api.getThread(thread.thread_id));
      if (view === state.view) renderThreadList();
    } else await loadConversation(thread.thread_id);
    if (view === state.view) await loadHistory();
  } catch (error) {
    if (view === state.view) report(error, "Could not refresh the thread");
  }
}

// ---------------------------------------------------------------------------------------------
// Watching the open thread: a turn from another tab is followed live, a moved head reloads

let watchTimer = null;

/** Look at the open thread every few seconds (the first time after `firstMs`). */
export function watchThread(firstMs = null) {
  clearTimeout(watchTimer);
  const id = state.thread?.thread_id;
  if (!id) return;
  const view = state.view;
  const tick = async () => {
    if (view !== state.view) return;
    if (document.visibilityState === "visible" && !state.running && !state.offline) {
      try {
        const thread = await api.getThread(id);
        if (view !== state.view) return;
        const before = state.thread;
        const statusChanged = state.threads.get(id)?.status !== thread.status;
        upsertThread(thread);
        if (statusChanged) renderThreadList();
        syncApprovals(before, thread); // decided elsewhere: its card goes (paused: it comes)
        if (thread.status === "busy") await followActiveRun();
        else if (state.remoteBusy || thread.head_checkpoint_id !== before.head_checkpoint_id) {
          state.remoteBusy = false;
          hideBanner("busy");
          await refreshThread();
        }
      } catch (error) {
        if (view !== state.view) return;
        if (error instanceof NetworkError) setOffline(true);
        else if (!(error instanceof ApiError && error.status === 404)) report(error, "Could not check the thread");
      }
    }
    if (view === state.view) watchTimer = setTimeout(tick, state.remoteBusy ? WATCH_BUSY_MS : WATCH_IDLE_MS);
  };
  watchTimer = setTimeout(tick, firstMs ?? (state.remoteBusy ? WATCH_BUSY_MS : WATCH_IDLE_MS));
}

function stopWatching() {
  clearTimeout(watchTimer);
  watchTimer = null;
}

export function initConversation() {
  ui.loadEarlier.addEventListener("click", loadEarlier);
  ui.transcript.addEventListener("scroll", syncJumpButton, { passive: true });
  ui.jumpLatest.addEventListener("click", () => {
    scrollToBottom(true);
    ui.input.focus();
  });
  // Back to the tab: look at once instead of waiting for the next tick.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && state.thread && !state.running) watchThread(0);
  });
  window.addEventListener("hashchange", () => {
    const id = threadFromHash();
    if (id && id !== state.thread?.thread_id) openThread(id, { push: false });
    else if (!id && state.thread) newThread();
  });
}
