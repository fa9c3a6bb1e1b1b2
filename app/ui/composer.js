// The message box: one draft per thread (kept in localStorage, so a half-written follow-up stays
// with its own conversation, across reloads), Enter to send, Send or Stop.

import { state, ui } from "./page.js";
import { send } from "./runs.js";
import { stop } from "./stop.js";

const draftKey = (threadId) => `lma.draft.${threadId ?? "new"}`;

export function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 200)}px`;
}

function storeDraft(threadId, text) {
  try {
    if (text.trim()) localStorage.setItem(draftKey(threadId), text);
    else localStorage.removeItem(draftKey(threadId));
  } catch {
    // Storage full or disabled: the draft lives as long as the page does.
  }
}

/** Show the draft of `threadId` (null: a new thread) in the box. */
export function loadDraft(threadId) {
  ui.input.value = localStorage.getItem(draftKey(threadId)) ?? "";
  autosize();
}

export function clearDraft(threadId) {
  storeDraft(threadId, "");
}

/** The box is emptied for a question the service has taken. */
export function takeQuestion(threadId) {
  ui.input.value = "";
  autosize();
  clearDraft(threadId);
  clearDraft(null);
}

/**
 * A question that was not saved (stopped, failed, refused) goes back in its thread's box. What
 * was typed meanwhile is kept after it, never overwritten.
 */
export function putBack(threadId, content) {
  const open = (state.thread?.thread_id ?? null) === threadId;
  const current = open ? ui.input.value : (localStorage.getItem(draftKey(threadId)) ?? "");
  if (current.includes(content)) return;
  const text = current.trim() ? `${content}\n\n${current}` : content;
  storeDraft(threadId, text);
  if (open) {
    ui.input.value = text;
    autosize();
  }
}

export function initComposer() {
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send(ui.input.value);
  });
  ui.stop.addEventListener("click", stop);
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!state.running) send(ui.input.value);
    }
  });
  ui.input.addEventListener("input", () => {
    autosize();
    storeDraft(state.thread?.thread_id ?? null, ui.input.value);
  });
  for (const button of document.querySelectorAll(".suggestion"))
    button.addEventListener("click", () => send(button.textContent));
}
