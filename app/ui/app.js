// The chat page: wiring. Each part lives in its own module:
//   page.js          elements, state, banner, toast, the service being unreachable
//   sidebar.js       the thread list (grouped, searched), rename, delete, the drawer
//   conversation.js  the open thread: header, transcript, opening, watching for moves
//   messages.js      stored messages and their actions (copy, edit, regenerate, versions)
//   runs.js          sending, following and rejoining a run's stream, Retry
//   stop.js          Stop: cancelling this page's run (a question or a decision), what remains
//   live.js          what a tab keeps of its runs (sessionStorage), a run on screen
//   composer.js      the message box and its per-thread drafts
//   history.js       the checkpoints as a tree; viewing and continuing from one
// No framework: a little state object, and render functions that rebuild the part of the page
// that changed. Everything the service says is inserted as text (textContent), never as HTML.

import { ApiError, api } from "./api.js";
import { initComposer } from "./composer.js";
import { initConversation, newThread, openThread, renderHeader, renderTranscript, threadFromHash } from "./conversation.js";
import { icon } from "./dom.js";
import { closeHistory, initHistory } from "./history.js";
import { initMemoryPanel } from "./memories.js";
import { onReconnect, report, state, toast, ui } from "./page.js";
import { sendPending } from "./runs.js";
import { closeSidebar, deleteThread, initSidebar, loadThreads, renameThread, upsertThread } from "./sidebar.js";
import { stop, stoppable } from "./stop.js";

const THREAD_ID = /^[A-Za-z0-9._:-]{1,128}$/;

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

/** Escape closes what is open, innermost first; with nothing open it stops a running turn. */
function onKey(event, memoryPanel) {
  if (event.key === "Escape" && !document.querySelector("dialog[open]")) {
    if (closeSidebar() || closeHistory() || memoryPanel.closeIfOpen()) return;
    if (stoppable()) {
      event.preventDefault();
      stop();
    }
  } else if ((event.ctrlKey || event.metaKey) && event.shiftKey && event.key.toLowerCase() === "o") {
    event.preventDefault(); // Ctrl+Shift+O: a new thread, as in other chat apps
    newThread();
  }
}

function start() {
  for (const slot of document.querySelectorAll("[data-icon]")) slot.replaceWith(icon(slot.dataset.icon));
  const memoryPanel = initMemoryPanel();
  initSidebar();
  initConversation();
  initHistory();
  initComposer();

  ui.newThread.addEventListener("click", newThread);
  ui.openForm.addEventListener("submit", openById);
  ui.copyId.addEventListener("click", copyThreadId);
  ui.renameBtn.addEventListener("click", () => state.thread && renameThread(state.thread));
  ui.deleteBtn.addEventListener("click", () => state.thread && deleteThread(state.thread));
  ui.bannerClose.addEventListener("click", () => (ui.banner.hidden = true));
  ui.renameInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault(); // the dialog's first button is Cancel: Enter means Save
      ui.renameDialog.close("save");
    }
  });
  document.addEventListener("keydown", (event) => onKey(event, memoryPanel));
  document.addEventListener("lma:turn-ended", () => memoryPanel.refreshIfOpen());
  onReconnect(async () => {
    loadThreads({ reset: true });
    if (state.thread) await openThread(state.thread.thread_id, { push: false });
    sendPending();
    memoryPanel.refreshIfOpen();
  });

  renderHeader();
  renderTranscript();
  loadThreads({ reset: true });
  const id = threadFromHash();
  if (id) openThread(id, { push: false });
  else {
    newThread();
    ui.input.focus();
  }
}

start();
