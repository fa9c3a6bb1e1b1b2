// Runs: sending a question as a durable run, following its stream live, rejoining it after a
// reload or a switch away and back (from the last event seen, kept in sessionStorage), and a
// turn that did not finish shown as "not saved" with Retry: the question is never lost.

import { ApiError, NetworkError, api, streamRun } from "./api.js";
import { clearDraft, putBack, takeQuestion } from "./composer.js";
import {
  newThread,
  refreshThread,
  renderControls,
  renderHeader,
  renderSnapshotBar,
  renderTranscript,
  scrollToBottom,
  setHash,
} from "./conversation.js";
import { h, titleFrom } from "./dom.js";
import { announce, busy, hideBanner, report, setOffline, showBanner, state, toast, ui } from "./page.js";
import { LiveTurn, dropRecord, loadRecord, remember, saveRecord } from "./live.js";
import { renderThreadList, upsertThread } from "./sidebar.js";
import { explainWaiting, waitsForDecision } from "./approvals.js";
import { cancel, stopped } from "./stop.js";

// ---------------------------------------------------------------------------------------------
// Sending

let pending = null; // {threadId, content}: sent while the service could not be reached

/** Send the question again once the service is back, if it is still what the box holds. */
export function sendPending() {
  const waiting = pending;
  pending = null;
  if (!waiting || (state.thread?.thread_id ?? null) !== waiting.threadId) return;
  if (ui.input.value.trim() === waiting.content) send(waiting.content);
}

/**
 * Send `text` as a turn of the open thread (a new one is created first). `fork` starts it from
 * that checkpoint ("~start": before the first turn); `keep` is what stays on screen above it
 * (an edited or regenerated turn replaces what came after it). `abandon` sends it to a thread
 * that waits for a decision (the pending call is then never run); without it, that is explained.
 */
export async function send(text, { fork, keep = null, strategy, abandon = false } = {}) {
  const content = text.trim();
  if (!content || busy()) return;
  if (!abandon && fork === undefined && !keep && waitsForDecision()) return explainWaiting(content);
  if (state.offline) {
    pending = { threadId: state.thread?.thread_id ?? null, content };
    setOffline(true);
    toast("Not sent yet: it goes as soon as the service is back.");
    return;
  }
  hideBanner();
  // Busy from the first moment: a second Enter while the thread is being made sends nothing.
  const run = { threadId: null, runId: null, content, own: true, live: null, stopping: false };
  state.running = run;
  renderControls();
  let created = false;
  if (!state.thread) {
    try {
      const thread = await api.createThread({ title: titleFrom(content) });
      upsertThread(thread);
      state.thread = thread;
      created = true;
      setHash(thread.thread_id, false);
      renderHeader();
    } catch (error) {
      if (state.running === run) state.running = null;
      renderControls();
      if (error instanceof NetworkError) pending = { threadId: null, content };
      return report(error, "Could not start the thread");
    }
  }
  const threadId = state.thread.thread_id;
  const view = state.view;
  fork ??= state.viewing && !state.viewing.is_head ? state.viewing.checkpoint_id : undefined;
  dropRecord(threadId);
  ui.messages.querySelector(".turn.failed")?.remove();
  if (keep) {
    state.messages = keep;
    state.viewing = null;
    renderSnapshotBar();
    renderTranscript();
  }
  run.threadId = threadId;
  run.live = new LiveTurn(content);
  scrollToBottom(true);
  renderControls();
  renderThreadList();
  let started;
  try {
    const body = fork ? { content, checkpoint_id: fork } : { content, abandon_interrupt: abandon || undefined };
    started = await api.startRun(threadId, body, strategy);
  } catch (error) {
    run.live.remove();
    if (state.running === run) state.running = null;
    if (view !== state.view) return;
    renderControls();
    renderThreadList();
    await refused(error, threadId, content, created);
    return;
  }
  run.runId = started.run_id;
  takeQuestion(threadId);
  if (state.viewing) {
    state.viewing = null; // the snapshot it continued is now the past of the new turn
    renderSnapshotBar();
  }
  const record = { threadId, runId: run.runId, content, fork: fork ?? null, lastEventId: null, events: [] };
  record.first = created; // the first turn of a thread made here: it gets a better title after
  saveRecord(record);
  if (run.stopping) cancel(run);
  await follow(record, run, view);
}

/** The service did not take the turn: say why; the question stays in the box. */
async function refused(error, threadId, content, created) {
  if (created) {
    // A thread made for a first question that never ran would linger empty in the list.
    state.threads.delete(threadId);
    state.thread = null;
    setHash(null, false);
    renderHeader();
    renderThreadList();
    await api.deleteThread(threadId).catch(() => {}); // retention sweeps it if this fails too
  }
  if (error instanceof ApiError && error.code === "thread_busy") {
    showBanner(
      "warn",
      "This thread is busy with another turn. Your message is kept in the box; send it when that turn is done.",
      { key: "busy" },
    );
    await followActiveRun();
  } else if (error instanceof ApiError && error.code === "thread_interrupted") {
    await refreshThread(); // it paused for a decision meanwhile (another tab or device)
    explainWaiting(content);
  } else if (error instanceof NetworkError) {
    pending = { threadId: created ? null : threadId, content };
    setOffline(true);
  } else report(error, "Could not send the message");
}

// ---------------------------------------------------------------------------------------------
// Following a run's stream

export async function follow(record, run, view) {
  run.controller = new AbortController();
  let end = null;
  let timer = null;
  let drops = 0; // connection drops since the last event
  const persist = () => {
    clearTimeout(timer);
    timer = setTimeout(() => saveRecord(record), 150);
  };
  const onEvent = (name, data, id) => {
    if (view !== state.view) return;
    drops = 0;
    if (id) record.lastEventId = id;
    if (run.own) {
      remember(record, name, data);
      persist();
    }
    run.live.apply(name, data);
    run.live.turn.cards?.get("rejoined")?.remove(); // it moved: it runs
    if (name === "done" || name === "error") end = { name, data };
    else if (name === "interrupt") record.paused = true;
    scrollToBottom();
  };
  while (!end) {
    try {
      await streamRun(record.threadId, record.runId, {
        lastEventId: record.lastEventId,
        onEvent,
        signal: run.controller.signal,
      });
      if (!end) throw new NetworkError(new Error("the stream ended before the run did"));
    } catch (error) {
      clearTimeout(timer);
      if (error.name === "AbortError" || view !== state.view) {
        if (run.own) saveRecord(record); // we left; the run goes on, and coming back rejoins it
        return;
      }
      // A drop is resumed at once from the last event seen; a second in a row means the service is gone.
      if (error instanceof NetworkError && drops++ === 0) continue;
      return lost(record, run, error);
    }
  }
  clearTimeout(timer);
  await finished(record, run, end);
}

/** The stream could not be followed to its end: the turn is not saved (as far as we know). */
function lost(record, run, error) {
  if (state.running === run) state.running = null;
  if (error instanceof ApiError && error.status === 404) {
    dropRecord(record.threadId); // the thread or run is gone (deleted elsewhere)
    run.live.remove();
  } else if (!run.own) run.live.remove();
  else {
    record.interrupted = true;
    saveRecord(record);
    run.live.turn.fail(
      "Not saved: the connection to the service was lost during this turn. Your question is back in the box; when the service is back, this page shows what became of the turn.",
    );
    putBack(record.threadId, record.content);
  }
  renderControls();
  renderThreadList();
  report(error, "Could not follow the turn");
}

async function finished(record, run, end) {
  document.dispatchEvent(new Event("lma:turn-ended")); // a turn may have saved or forgotten a memory
  if (end.name === "done") {
    if (run.own) dropRecord(record.threadId);
    run.live.turn.finish();
    run.ended = true;
    announce(`Answer: ${run.live.turn.text()}`);
    if (ui.input.value.trim() === record.content) takeQuestion(record.threadId); // was put back
    // The page is idle again once it shows the thread as saved (its new head and history).
    await refreshThread();
    if (state.running === run) state.running = null;
    renderControls();
    renderThreadList();
    if (record.first && !record.paused) retitle(record.threadId); // paused: titled once it answers
    return;
  }
  if (state.running === run) state.running = null;
  renderControls();
  run.live.remove();
  if (end.data.code === "cancelled") return stopped(record, run);
  if (run.decision)
    showBanner("error", `The decision could not be carried out (${end.data.code}): the call still waits for one.`, {
      dismissible: true,
    });
  if (!run.own) return refreshThread();
  record.failed = { code: end.data.code, message: end.data.message };
  saveRecord(record);
  putBack(record.threadId, record.content);
  renderFailedTurn();
  showBanner("error", `The turn failed (${end.data.code}) and nothing of it was saved. Retry sends it again.`, {
    dismissible: true,
  });
  renderThreadList();
}

/** The service titles the thread from its first exchange; the question's title stays meanwhile. */
async function retitle(threadId) {
  try {
    upsertThread(await api.titleThread(threadId));
  } catch {
    return; // a nicety: the title made from the question stays
  }
  renderThreadList();
  if (state.thread?.thread_id === threadId) renderHeader();
}

/** A turn of this tab that failed (shown also after a reload): "not saved", with Retry. */
export function renderFailedTurn() {
  const record = state.thread ? loadRecord(state.thread.thread_id) : null;
  if (!record?.failed || state.viewing || state.running) return;
  putBack(record.threadId, record.content); // until Retry or Dismiss, the question is in the box
  const live = new LiveTurn(record.content);
  for (const [name, data] of record.events) live.apply(name, data);
  const reason =
    record.failed.code === "worker_lost"
      ? "the service stopped during this turn."
      : `${record.failed.message || record.failed.code}`;
  const retry = h("button", {
    class: "btn btn-small",
    type: "button",
    text: "Retry",
    disabled: busy(),
    onclick: () => send(record.content, { fork: record.fork ?? undefined, strategy: "enqueue" }),
  });
  const dismiss = h("button", {
    class: "btn btn-quiet btn-small",
    type: "button",
    text: "Dismiss",
    onclick: () => dismissFailed(record, live),
  });
  live.turn.fail(`Not saved: ${reason} Your question is in the box.`, h("div", { class: "row" }, retry, dismiss));
}

/** Forget a failed turn; a thread it was the only question of goes too (it would linger empty). */
async function dismissFailed(record, live) {
  dropRecord(record.threadId);
  live.remove();
  const thread = state.thread;
  if (thread?.thread_id !== record.threadId || thread.turn_count > 0 || thread.message_count > 0) return;
  try {
    await api.deleteThread(record.threadId);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) return report(error, "Could not delete the empty thread");
  }
  state.threads.delete(record.threadId);
  clearDraft(record.threadId);
  putBack(null, record.content); // the question moves to the new thread's box
  newThread();
}

/**
 * Show the open thread's running turn: this tab's own (rejoined where it left off, after a
 * reload or a switch back), or one sent from another tab or client (from its start).
 */
export async function followActiveRun() {
  const thread = state.thread;
  if (!thread || state.running) return;
  const view = state.view;
  try {
    const record = loadRecord(thread.thread_id);
    if (record && !record.failed) {
      const run = await api.getRun(thread.thread_id, record.runId);
      if (view !== state.view) return;
      if (run.status === "pending" || run.status === "running") return rejoin(record, true, view);
      if (run.status === "success") {
        dropRecord(thread.thread_id);
        if (ui.input.value.trim() === record.content) takeQuestion(thread.thread_id);
        if (record.interrupted) toast("Your last turn was saved after all.");
      } else {
        record.failed = run.error ?? { code: run.status, message: "" };
        saveRecord(record);
        putBack(record.threadId, record.content);
        renderFailedTurn();
      }
      return;
    }
    if (thread.status !== "busy") return;
    const [active] = await api.activeRuns(thread.thread_id);
    if (view !== state.view || state.running) return;
    if (!active) {
      state.remoteBusy = true;
      showBanner("warn", "A turn is queued on this thread; the page shows it when it runs.", { key: "busy" });
      renderControls();
      return;
    }
    state.remoteBusy = false;
    hideBanner("busy");
    const other = { threadId: thread.thread_id, runId: active.run_id, content: null, lastEventId: null, events: [] };
    await rejoin(other, false, view);
  } catch (error) {
    if (view !== state.view) return;
    if (error instanceof ApiError && error.status === 404) dropRecord(thread.thread_id);
    else report(error, "Could not follow the running turn");
  }
}

async function rejoin(record, own, view) {
  const live = new LiveTurn(record.content);
  for (const [name, data] of record.events) live.apply(name, data);
  if (record.interrupted) {
    // Its connection was lost: the run may go on, or have died with a restarted service (the
    // service then ends it as "not saved" once its lease runs out). Say so until it moves.
    live.turn.card(
      "rejoined",
      h("p", {
        class: "turn-note",
        role: "status",
        text: "Reconnected to this turn. If the service restarted, it ends as “not saved” shortly and Retry sends it again.",
      }),
    );
  }
  const run = { threadId: record.threadId, runId: record.runId, content: record.content, own, live, stopping: false };
  state.running = run;
  scrollToBottom(true);
  renderControls();
  renderThreadList();
  await follow(record, run, view);
}
