// The chat page: thread sidebar, streaming transcript, history timeline and forks.
//
// No framework: a little state object, and render functions that rebuild the part of the page
// that changed. Everything the service says is inserted as text (textContent), never as HTML.

import { ApiError, NetworkError, api, streamTurn } from "./api.js";
import { ago, fullTime, h, icon, plural, shortTime, titleFrom, titleOf } from "./dom.js";
import { initMemoryPanel } from "./memories.js";
import { TurnView, userBubble } from "./transcript.js";
import { buildTree, lineage, questionsAlong } from "./tree.js";

const THREAD_PAGE = 30;
const MESSAGE_PAGE = 100;
const HISTORY_PAGE = 200;
const HISTORY_MAX_PAGES = 10; // 2000 checkpoints: far beyond any conversation a person reads
const THREAD_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const NARROW = window.matchMedia("(max-width: 800px)");

const $ = (id) => document.getElementById(id);
const ui = {
  app: document.querySelector(".app"),
  sidebar: $("sidebar"),
  scrim: $("scrim"),
  openSidebar: $("open-sidebar"),
  closeSidebar: $("close-sidebar"),
  newThread: $("new-thread"),
  openForm: $("open-form"),
  openInput: $("open-input"),
  openError: $("open-error"),
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
  renameDialog: $("rename-dialog"),
  renameInput: $("rename-input"),
  deleteDialog: $("delete-dialog"),
  deleteText: $("delete-text"),
  toast: $("toast"),
};

const state = {
  threads: new Map(), // thread_id -> thread, as the API returns it
  nextCursor: null,
  listLoaded: false,
  listLoading: false,
  thread: null, // the open thread; null for a new thread not yet sent
  messages: [], // the transcript on screen (live branch, or the snapshot being viewed)
  earlierCursor: null,
  tree: null, // the open thread's checkpoints (tree.js)
  questions: new Map(), // checkpoint_id -> the question of its turn
  viewing: null, // the checkpoint whose snapshot is on screen, or null for the live transcript
  running: null, // {threadId, controller} while a turn of ours streams
  remoteBusy: false, // another client's turn runs on the open thread
  busyTimer: null,
  offline: false,
  view: 0, // bumped whenever the open thread changes, so late answers for the old one are dropped
  feedback: new Map(), // run_id -> "up" | "down": the ratings given to the open thread's turns
};

// ---------------------------------------------------------------------------------------------
// Banner, toast, offline detection

let bannerKey = null;

function showBanner(kind, text, { key = kind, dismissible = false } = {}) {
  bannerKey = key;
  ui.banner.dataset.kind = kind;
  ui.banner.setAttribute("role", kind === "error" ? "alert" : "status");
  ui.bannerText.textContent = text;
  ui.bannerClose.hidden = !dismissible;
  ui.banner.hidden = false;
}

function hideBanner(key = null) {
  if (key !== null && key !== bannerKey) return;
  bannerKey = null;
  ui.banner.hidden = true;
}

let toastTimer = null;
function toast(text) {
  ui.toast.textContent = text;
  ui.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (ui.toast.hidden = true), 2400);
}

function setOffline(offline) {
  if (offline === state.offline) return;
  state.offline = offline;
  if (offline) {
    showBanner("error", "The service can't be reached. Retrying every few seconds…", { key: "offline" });
    const probe = async () => {
      try {
        await api.health();
        setOffline(false);
      } catch {
        setTimeout(probe, 3000);
      }
    };
    setTimeout(probe, 3000);
    return;
  }
  hideBanner("offline");
  toast("Connected again");
  loadThreads({ reset: true });
  if (state.thread) openThread(state.thread.thread_id, { push: false });
}

/** Show what went wrong in words a person can act on. */
function report(error, doing) {
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

// ---------------------------------------------------------------------------------------------
// Sidebar: the thread list, newest activity first, more loaded on scroll

function upsertThread(thread) {
  state.threads.set(thread.thread_id, thread);
  if (state.thread?.thread_id === thread.thread_id) state.thread = thread;
}

function sortedThreads() {
  return [...state.threads.values()].sort(
    (a, b) =>
      Date.parse(b.last_activity_at) - Date.parse(a.last_activity_at) || (a.thread_id < b.thread_id ? 1 : -1),
  );
}

async function loadThreads({ reset = false } = {}) {
  if (state.listLoading || (!reset && state.listLoaded && !state.nextCursor)) return;
  state.listLoading = true;
  renderListFooter();
  let loaded = false;
  try {
    const page = await api.listThreads(reset ? undefined : state.nextCursor, THREAD_PAGE);
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
      h("button", {
        class: "btn btn-quiet btn-small",
        type: "button",
        text: "Load more",
        onclick: () => loadThreads(),
      }),
    );
  else if (state.listLoaded && state.threads.size === 0)
    footer.replaceChildren("No threads yet: start one with New thread.");
  else footer.replaceChildren();
}

function renderThreadList() {
  // Rebuilding drops focus: remember which control had it and give it back afterwards.
  const focused = document.activeElement?.closest?.(".thread-item");
  const focusedRole = document.activeElement?.dataset?.role;
  const focusedId = focused?.dataset.id;
  const currentId = state.thread?.thread_id;
  ui.threadList.replaceChildren(
    ...sortedThreads().map((thread) => {
      const current = thread.thread_id === currentId;
      // An untitled thread is named by its id: many "Untitled thread" rows would be indistinguishable.
      const title = thread.title || thread.thread_id;
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
            title: thread.thread_id,
            onclick: () => openThread(thread.thread_id),
          },
          h("span", { class: `thread-title${thread.title ? "" : " untitled"}`, text: title }),
          // Hidden commas, so a screen reader says "title, just now, 6 messages".
          h("span", { class: "visually-hidden", text: ", " }),
          h(
            "span",
            { class: "thread-sub" },
            thread.status === "busy" || state.running?.threadId === thread.thread_id
              ? h("span", { class: "busy-dot", title: "A turn is running" })
              : null,
            h("time", {
              datetime: thread.last_activity_at,
              title: fullTime(thread.last_activity_at),
              text: ago(thread.last_activity_at),
            }),
            h("span", { "aria-hidden": "true", text: "·" }),
            h("span", { class: "visually-hidden", text: ", " }),
            h("span", { text: plural(thread.message_count, "message") }),
          ),
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
    }),
  );
  if (focusedId) {
    const item = [...ui.threadList.children].find((li) => li.dataset.id === focusedId);
    item?.querySelector(`[data-role="${focusedRole}"]`)?.focus();
  }
  renderListFooter();
}

// ---------------------------------------------------------------------------------------------
// The transcript: user bubbles, and one block per assistant turn with its tool steps

/** Ends a turn's block and, for a turn the service completed (it has a run id), offers thumbs. */
function finishTurn(turn, runId) {
  turn.finish();
  const threadId = state.thread?.thread_id;
  if (!runId || !threadId) return;
  turn.feedback(state.feedback.get(runId) ?? null, async (rating) => {
    try {
      await api.giveFeedback(threadId, runId, rating);
    } catch (error) {
      report(error, "Could not save the rating");
      return false;
    }
    if (state.thread?.thread_id === threadId) state.feedback.set(runId, rating);
    return true;
  });
}

function renderTranscript({ keepScroll = false } = {}) {
  const fromBottom = ui.transcript.scrollHeight - ui.transcript.scrollTop;
  ui.messages.replaceChildren();
  let turn = null;
  let runId = null;
  for (const message of state.messages) {
    if (message.role === "user" || message.role === "system") {
      if (turn) finishTurn(turn, runId);
      turn = null;
      runId = null;
      ui.messages.append(
        message.role === "user"
          ? userBubble(message.content)
          : h("div", { class: "msg-system", text: message.content }),
      );
    } else {
      turn ??= new TurnView(ui.messages);
      runId = message.run_id ?? runId;
      if (message.role === "tool") turn.toolResult(message);
      else turn.message(message);
    }
  }
  if (turn) finishTurn(turn, runId);
  ui.welcome.hidden = state.messages.length > 0 || state.running !== null;
  ui.loadEarlier.hidden = !state.earlierCursor || state.viewing !== null;
  if (keepScroll) ui.transcript.scrollTop = ui.transcript.scrollHeight - fromBottom;
  else scrollToBottom(true);
}

function scrollToBottom(force = false) {
  const box = ui.transcript;
  // Follow the stream only while the reader is at the bottom; never yank them back up.
  if (force || box.scrollHeight - box.scrollTop - box.clientHeight < 120) box.scrollTop = box.scrollHeight;
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
// Header, composer state, branch indicator

function renderHeader() {
  const thread = state.thread;
  ui.title.textContent = thread ? titleOf(thread) : "New thread";
  document.title = `${thread ? titleOf(thread) : "New thread"} · Memory agent`;
  ui.idBox.hidden = !thread;
  ui.newHint.hidden = Boolean(thread);
  ui.threadId.textContent = thread?.thread_id ?? "";
  renderControls();
  renderBranch();
}

function renderControls() {
  const busy = state.running !== null || state.remoteBusy;
  const noThread = !state.thread;
  ui.input.disabled = busy;
  ui.send.disabled = busy;
  ui.messages.setAttribute("aria-busy", String(state.running !== null));
  ui.renameBtn.disabled = noThread || busy;
  ui.deleteBtn.disabled = noThread || busy;
  ui.historyBtn.disabled = noThread;
  for (const button of ui.timeline.querySelectorAll("button")) button.disabled = busy;
  for (const button of document.querySelectorAll(".suggestion")) button.disabled = busy;
  ui.backToLatest.disabled = busy;
  ui.input.placeholder = busy
    ? "Waiting for the turn to finish…"
    : state.viewing
      ? `Continue from turn ${state.viewing.turn}: this starts a new branch…`
      : "Ask about the latest threats…";
}

function renderBranch() {
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
  ui.branchChip.title =
    "Each fork from an earlier checkpoint starts a new branch; the page follows the thread's head.";
  ui.branchChip.hidden = false;
}

function renderSnapshotBar() {
  const node = state.viewing;
  ui.snapshotBar.hidden = !node;
  if (node) {
    ui.snapshotText.textContent =
      `You are looking at turn ${node.turn} of branch ${node.branch} as it was on ${shortTime(node.created_at)}.` +
      " Send a message to continue from here on a new branch.";
  }
  renderControls();
  renderBranch();
}

function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 200)}px`;
}

// ---------------------------------------------------------------------------------------------
// Opening threads (URL: #thread=<id>, so reload and the back button keep the place)

function threadFromHash() {
  const match = location.hash.match(/^#thread=(.+)$/);
  return match ? decodeURIComponent(match[1]) : null;
}

function setHash(id, push) {
  const target = id ? `#thread=${encodeURIComponent(id)}` : location.pathname + location.search;
  if (id ? location.hash === target : !location.hash) return;
  if (push) history.pushState(null, "", target);
  else history.replaceState(null, "", target);
}

function leaveThread() {
  state.view += 1;
  stopBusyWatch();
  // Stop reading a running turn's stream; the turn itself runs on in the service.
  state.running?.controller.abort();
  state.running = null;
  state.viewing = null;
  state.tree = null;
  state.questions = new Map();
  state.earlierCursor = null;
  hideBanner("busy");
  renderSnapshotBar();
}

function newThread() {
  leaveThread();
  state.thread = null;
  state.messages = [];
  state.feedback = new Map();
  setHash(null, true);
  renderHeader();
  renderTranscript();
  renderThreadList();
  closeHistory();
  closeSidebar();
  ui.input.focus();
}

async function openThread(id, { push = true } = {}) {
  leaveThread();
  const view = state.view;
  setHash(id, push);
  closeSidebar();
  state.thread = state.threads.get(id) ?? { thread_id: id, title: null };
  state.messages = [];
  renderHeader();
  renderThreadList();
  ui.welcome.hidden = true;
  ui.messages.replaceChildren(h("p", { class: "list-footer", text: "Loading the conversation…" }));
  try {
    const [thread, page, rated] = await Promise.all([
      api.getThread(id),
      api.messages(id, undefined, MESSAGE_PAGE),
      api.feedback(id),
    ]);
    if (view !== state.view) return;
    upsertThread(thread);
    state.thread = thread;
    state.feedback = new Map(rated.feedback.map((f) => [f.run_id, f.rating]));
    state.messages = page.messages;
    state.earlierCursor = page.next_cursor;
    renderHeader();
    renderTranscript();
    renderThreadList();
    if (thread.status === "busy") watchBusy();
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
    ui.messages.replaceChildren();
    report(error, "Could not open the thread");
  }
}

/** Another client's turn runs here: say so, lock the composer, and reload when it is saved. */
function watchBusy(
  text = "A turn is running on this thread in another tab or client. The page will show it when it finishes.",
) {
  stopBusyWatch();
  state.remoteBusy = true;
  renderControls();
  showBanner("warn", text, { key: "busy" });
  const view = state.view;
  const id = state.thread.thread_id;
  const tick = async () => {
    try {
      const thread = await api.getThread(id);
      if (view !== state.view) return;
      const changed = state.threads.get(id)?.status !== thread.status;
      upsertThread(thread);
      if (changed) renderThreadList();
      if (thread.status !== "busy") {
        stopBusyWatch();
        hideBanner("busy");
        renderThreadList();
        openThread(id, { push: false });
        return;
      }
    } catch (error) {
      if (view !== state.view) return;
      if (!(error instanceof NetworkError)) return report(error, "Could not check the thread");
      setOffline(true);
    }
    state.busyTimer = setTimeout(tick, 1500);
  };
  state.busyTimer = setTimeout(tick, 1000);
}

function stopBusyWatch() {
  clearTimeout(state.busyTimer);
  state.busyTimer = null;
  state.remoteBusy = false;
  renderControls();
}

// ---------------------------------------------------------------------------------------------
// Sending a message and watching the answer stream in

async function send(text) {
  const content = text.trim();
  if (!content || state.running || state.remoteBusy) return;
  hideBanner();
  const view = state.view;
  const fork = state.viewing && !state.viewing.is_head ? state.viewing : null;
  const controller = new AbortController();
  state.running = { controller };
  renderControls();

  if (!state.thread) {
    // A new thread: create it first so it gets a title from its first question.
    try {
      const thread = await api.createThread({ title: titleFrom(content) });
      upsertThread(thread);
      state.thread = thread;
      setHash(thread.thread_id, false);
      renderHeader();
      renderThreadList();
    } catch (error) {
      state.running = null;
      renderControls();
      return report(error, "Could not start the thread");
    }
  }
  const threadId = state.thread.thread_id;
  state.running.threadId = threadId;
  renderThreadList();
  const before = state.messages;
  ui.input.value = "";
  autosize();
  ui.welcome.hidden = true;
  const bubble = userBubble(content);
  ui.messages.append(bubble);
  const turn = new TurnView(ui.messages);
  turn.setThinking(true);
  scrollToBottom(true);
  const added = [{ id: "pending", role: "user", content }];
  let started = false;
  let failure = null;
  let done = null;

  const onEvent = (name, data) => {
    if (view !== state.view) return;
    if (name === "run_start") started = true;
    else if (name === "token") turn.token(data);
    else if (name === "tool_call") {
      turn.setThinking(false);
      turn.toolCall(data);
    } else if (name === "tool_result") {
      turn.toolResult(data);
      turn.setThinking(true); // the model reads the result next
      added.push({
        id: data.message_id,
        role: "tool",
        content: data.content,
        tool_call_id: data.tool_call_id,
        name: data.name,
      });
    } else if (name === "message") {
      turn.message(data);
      added.push(data);
    } else if (name === "error") failure = data;
    else if (name === "done") done = data;
    scrollToBottom();
  };

  try {
    await streamTurn(
      threadId,
      fork ? { content, checkpoint_id: fork.checkpoint_id } : { content },
      onEvent,
      controller.signal,
    );
  } catch (error) {
    if (error.name === "AbortError" || view !== state.view) return; // we left; the turn runs on
    state.running = null;
    if (!started) {
      // Refused before it began (busy, invalid, service down): take it back, keep the text.
      bubble.remove();
      turn.root.remove();
      ui.welcome.hidden = state.messages.length > 0;
      if (!ui.input.value) ui.input.value = content;
      autosize();
    }
    if (error instanceof ApiError && error.code === "thread_busy") {
      const wait = error.retryAfter ? ` (try again in about ${error.retryAfter} s)` : "";
      watchBusy(
        `This thread is busy with another turn${wait}. Your message is kept in the box; the page unlocks when the thread is free.`,
      );
    } else if (error instanceof NetworkError && started) {
      turn.finish();
      setOffline(true);
    } else {
      renderControls();
      report(error, "Could not send the message");
    }
    return;
  } finally {
    if (state.running?.controller === controller) state.running = null;
    renderControls();
    renderThreadList();
    memoryPanel?.refreshIfOpen();
  }

  if (failure || !done) {
    turn.fail(
      failure ? `The turn failed: ${failure.message} Nothing of it was saved.` : "The stream ended early.",
    );
    if (!ui.input.value) ui.input.value = content;
    autosize();
    showBanner(
      "error",
      failure
        ? `The turn failed (${failure.code}). Your message is back in the box to try again.`
        : "The stream ended before the turn finished.",
      { dismissible: true },
    );
    return;
  }
  finishTurn(turn, done.run_id);
  state.messages = [...before, ...added];
  state.viewing = null;
  renderSnapshotBar();
  ui.input.focus();
  try {
    const thread = await api.getThread(threadId);
    if (view !== state.view) return;
    upsertThread(thread);
    renderHeader();
    renderThreadList();
    await loadHistory();
  } catch (error) {
    report(error, "Could not refresh the thread");
  }
}

// ---------------------------------------------------------------------------------------------
// History: checkpoints as a timeline; view one; fork from it

async function loadHistory() {
  const thread = state.thread;
  const view = state.view;
  if (!thread?.head_checkpoint_id) {
    state.tree = null;
    renderBranch();
    renderTimeline();
    return;
  }
  try {
    const checkpoints = [];
    let complete = true;
    let before;
    for (let page = 0; page < HISTORY_MAX_PAGES; page += 1) {
      const result = await api.history(thread.thread_id, before, HISTORY_PAGE);
      checkpoints.push(...result.checkpoints);
      complete &&= result.complete !== false;
      before = result.next_cursor;
      if (!before) break;
    }
    if (view !== state.view) return;
    state.tree = buildTree(checkpoints);
    state.tree.complete = complete;
    if (state.viewing) state.viewing = state.tree.nodes.get(state.viewing.checkpoint_id) ?? null;
    renderBranch();
    renderTimeline();
    if (!ui.history.hidden) loadQuestions();
  } catch (error) {
    if (view === state.view) report(error, "Could not load the history");
  }
}

/** Label each checkpoint with its question: one state read per branch tip. */
async function loadQuestions() {
  const { tree, thread, view } = { tree: state.tree, thread: state.thread, view: state.view };
  if (!tree) return;
  const missing = tree.leaves.filter((leaf) => !state.questions.has(leaf.checkpoint_id)).slice(0, 12);
  const results = await Promise.allSettled(
    missing.map(async (leaf) =>
      questionsAlong(tree, leaf, (await api.state(thread.thread_id, leaf.checkpoint_id)).messages),
    ),
  );
  if (view !== state.view) return;
  for (const result of results) {
    if (result.status === "fulfilled")
      for (const [id, question] of result.value) state.questions.set(id, question);
  }
  renderTimeline();
}

function renderTimeline() {
  const tree = state.tree;
  if (!tree || tree.newestFirst.length === 0) {
    ui.timeline.replaceChildren();
    ui.historyStatus.textContent = state.thread ? "No completed turn yet." : "";
    return;
  }
  const counts = `${plural(tree.newestFirst.length, "checkpoint")} on ${plural(tree.branchCount, "branch", "branches")}.`;
  // Retention can compact old checkpoints away: turns are then counted from the oldest one kept.
  ui.historyStatus.textContent = tree.complete
    ? counts
    : `${counts} Older checkpoints were compacted away; turns count from the oldest one kept.`;
  const onBranch = new Set(tree.head ? lineage(tree, tree.head).map((node) => node.checkpoint_id) : []);
  const busy = state.running !== null || state.remoteBusy;
  // Update the items in place, keyed by checkpoint: the timeline re-renders whenever the history
  // or a question label arrives, and replacing a button between a press and its release would
  // swallow the user's click.
  const existing = new Map([...ui.timeline.children].map((li) => [li.dataset.checkpoint, li]));
  const items = tree.newestFirst.map((node) => {
    const li = existing.get(node.checkpoint_id) ?? timelineItem();
    const question = state.questions.get(node.checkpoint_id);
    const viewing = state.viewing ? state.viewing.checkpoint_id === node.checkpoint_id : node.is_head;
    const sub = [`Branch ${node.branch}`, shortTime(node.created_at)];
    if (node.message_count !== null) sub.push(plural(node.message_count, "message"));
    if (node.forkOf) sub.push(`forked from turn ${node.forkOf.turn}`);
    li.node = node;
    li.dataset.checkpoint = node.checkpoint_id;
    li.className = `cp branch-${node.branch % 6}${onBranch.has(node.checkpoint_id) ? " on-branch" : ""}`;
    const button = li.firstElementChild;
    button.setAttribute("aria-pressed", String(viewing));
    button.disabled = busy;
    button.querySelector(".cp-title").textContent = `Turn ${node.turn}${question ? ` · ${question}` : ""}`;
    button.querySelector(".cp-sub").textContent = sub.join(" · ");
    button.querySelector(".badge").hidden = !node.is_head;
    return li;
  });
  items.forEach((li, index) => {
    if (ui.timeline.children[index] !== li) ui.timeline.insertBefore(li, ui.timeline.children[index] ?? null);
  });
  while (ui.timeline.children.length > items.length) ui.timeline.lastElementChild.remove();
}

/** An empty timeline entry; `renderTimeline` fills it (and refills it as the history changes). */
function timelineItem() {
  const li = h("li", {});
  li.append(
    h(
      "button",
      { class: "cp-btn", type: "button", onclick: () => viewCheckpoint(li.node) },
      h("span", { class: "cp-dot", "aria-hidden": "true" }),
      h("span", {}, h("span", { class: "cp-title" }), h("span", { class: "cp-sub" })),
      h("span", { class: "badge", text: "latest" }),
    ),
  );
  return li;
}

async function viewCheckpoint(node) {
  if (state.running || !state.thread) return;
  if (node.is_head) return backToLatest();
  const view = state.view;
  try {
    const snapshot = await api.state(state.thread.thread_id, node.checkpoint_id);
    if (view !== state.view) return;
    state.viewing = node;
    state.messages = snapshot.messages;
    state.earlierCursor = null;
    renderTranscript();
    renderSnapshotBar();
    renderTimeline();
    if (NARROW.matches) {
      closeHistory();
      ui.input.focus();
    }
  } catch (error) {
    report(error, "Could not load that checkpoint");
  }
}

function backToLatest() {
  if (state.thread) openThread(state.thread.thread_id, { push: false });
}

function openHistory() {
  ui.history.hidden = false;
  ui.historyBtn.setAttribute("aria-expanded", "true");
  renderTimeline();
  loadQuestions();
  ui.closeHistory.focus();
}

function closeHistory() {
  if (ui.history.hidden) return;
  ui.history.hidden = true;
  ui.historyBtn.setAttribute("aria-expanded", "false");
  if (ui.history.contains(document.activeElement)) ui.historyBtn.focus();
}

// ---------------------------------------------------------------------------------------------
// Rename, delete, copy, paste-to-resume

function renameThread(thread) {
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

function deleteThread(thread) {
  const dialog = ui.deleteDialog;
  ui.deleteText.textContent = `“${thread.title || thread.thread_id}” and its whole history (every checkpoint and branch) will be deleted. This cannot be undone.`;
  dialog.returnValue = "";
  dialog.onclose = async () => {
    if (dialog.returnValue !== "delete") return;
    try {
      await api.deleteThread(thread.thread_id);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404))
        return report(error, "Could not delete the thread");
    }
    state.threads.delete(thread.thread_id);
    if (state.thread?.thread_id === thread.thread_id) newThread();
    else renderThreadList();
    toast("Thread deleted");
  };
  dialog.showModal();
}

async function copyThreadId() {
  const id = state.thread?.thread_id;
  if (!id) return;
  try {
    await navigator.clipboard.writeText(id);
  } catch {
    // No clipboard API (plain http on a LAN address): select the id so Ctrl+C copies it.
    const range = document.createRange();
    range.selectNodeContents(ui.threadId);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    return toast("Press Ctrl+C to copy the selected id");
  }
  toast("Thread id copied");
}

async function openById(event) {
  event.preventDefault();
  const id = ui.openInput.value.trim();
  const fail = (text) => {
    ui.openError.textContent = text;
    ui.openError.hidden = false;
    ui.openInput.setAttribute("aria-invalid", "true");
    ui.openInput.focus();
  };
  ui.openError.hidden = true;
  ui.openInput.removeAttribute("aria-invalid");
  if (!id) return fail("Paste a thread id first.");
  if (!THREAD_ID.test(id)) return fail("A thread id is 1–128 letters, digits, '.', '_', ':' or '-'.");
  try {
    upsertThread(await api.getThread(id));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return fail("No thread with this id is yours.");
    return report(error, "Could not open the thread");
  }
  ui.openInput.value = "";
  openThread(id);
}

// ---------------------------------------------------------------------------------------------
// The thread drawer on narrow screens

function syncDrawer() {
  const open = ui.app.classList.contains("sidebar-open");
  // Off-canvas content must not be reachable by Tab; while the drawer is open, the page behind is inert.
  ui.sidebar.inert = NARROW.matches && !open;
  document.querySelector(".main").inert = NARROW.matches && open;
  ui.scrim.hidden = !(NARROW.matches && open);
  ui.openSidebar.setAttribute("aria-expanded", String(open));
}

function openSidebar() {
  ui.app.classList.add("sidebar-open");
  syncDrawer();
  ui.closeSidebar.focus();
}

function closeSidebar() {
  if (!ui.app.classList.contains("sidebar-open")) return;
  ui.app.classList.remove("sidebar-open");
  syncDrawer();
  ui.openSidebar.focus();
}

// ---------------------------------------------------------------------------------------------
// Wiring

let memoryPanel = null;

function start() {
  for (const slot of document.querySelectorAll("[data-icon]")) slot.replaceWith(icon(slot.dataset.icon));
  memoryPanel = initMemoryPanel();

  ui.newThread.addEventListener("click", newThread);
  ui.openForm.addEventListener("submit", openById);
  ui.openSidebar.addEventListener("click", openSidebar);
  ui.closeSidebar.addEventListener("click", closeSidebar);
  ui.scrim.addEventListener("click", closeSidebar);
  ui.copyId.addEventListener("click", copyThreadId);
  ui.historyBtn.addEventListener("click", () => (ui.history.hidden ? openHistory() : closeHistory()));
  ui.closeHistory.addEventListener("click", closeHistory);
  ui.backToLatest.addEventListener("click", backToLatest);
  ui.renameBtn.addEventListener("click", () => state.thread && renameThread(state.thread));
  ui.deleteBtn.addEventListener("click", () => state.thread && deleteThread(state.thread));
  ui.loadEarlier.addEventListener("click", loadEarlier);
  ui.bannerClose.addEventListener("click", () => hideBanner());
  ui.renameInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault(); // the dialog's first button is Cancel: Enter means Save
      ui.renameDialog.close("save");
    }
  });
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send(ui.input.value);
  });
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send(ui.input.value);
    }
  });
  ui.input.addEventListener("input", autosize);
  for (const button of document.querySelectorAll(".suggestion"))
    button.addEventListener("click", () => send(button.textContent));
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || document.querySelector("dialog[open]")) return;
    if (ui.app.classList.contains("sidebar-open")) closeSidebar();
    else if (!ui.history.hidden) closeHistory();
    else memoryPanel?.closeIfOpen();
  });
  window.addEventListener("hashchange", () => {
    const id = threadFromHash();
    if (id && id !== state.thread?.thread_id) openThread(id, { push: false });
    else if (!id && state.thread) newThread();
  });
  NARROW.addEventListener("change", syncDrawer);
  new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && loadThreads(), {
    root: ui.threadScroll,
    rootMargin: "200px",
  }).observe(ui.threadFooter);
  // Keep "5 minutes ago" true without reloading anything.
  setInterval(() => {
    for (const time of ui.threadList.querySelectorAll("time")) time.textContent = ago(time.dateTime);
  }, 60_000);

  syncDrawer();
  renderHeader();
  renderTranscript();
  loadThreads({ reset: true });
  const id = threadFromHash();
  if (id) openThread(id, { push: false });
  else ui.input.focus();
}

start();
