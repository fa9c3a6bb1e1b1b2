// Approvals (human in the loop): a turn paused before a tool call that needs a person's yes shows
// a card under the paused assistant message, with Approve, Edit (the arguments as JSON, checked
// before sending), Reject (an optional reason) and Respond (an answer the model reads in place of
// the call's result). The card comes live from the stream's `interrupt` event, and from the
// thread's `status`/`interrupts` after a reload or on another device. A decision is a resume: a
// background run followed like any turn, which Stop cancels (the call then waits again).

import { ApiError, api } from "./api.js";
import { h } from "./dom.js";
import { announce, busy, hideBanner, report, showBanner, state, toast, ui } from "./page.js";
import { follow, send } from "./runs.js";
import { cancel } from "./stop.js";
import { refreshThread, renderControls, renderTranscript, scrollToBottom } from "./conversation.js";
import { LiveTurn } from "./live.js";
import { renderThreadList, upsertThread } from "./sidebar.js";

let cardCount = 0; // ids for the labels inside cards
let held = null; // {threadId, content}: a message held back while its thread waits

/** The interrupts waiting on the open thread (none while a snapshot of the past is on screen). */
export function pendingInterrupts() {
  const thread = state.thread;
  if (!thread || state.viewing || thread.status !== "interrupted") return [];
  return thread.interrupts ?? [];
}

const actionsOf = (interrupt) => interrupt.value?.action_requests ?? [];

/** Whether `turn` (a TurnView) holds a call an interrupt waits on; `last`: the final turn shown. */
function belongsTo(interrupt, turn, last) {
  const actions = actionsOf(interrupt);
  return actions.some((action) => turn.steps.has(action.id)) || (last && actions.length === 0);
}

/** A stored turn: the cards of the interrupts that wait on one of its calls. */
export function attachApprovals(turn, last) {
  for (const interrupt of pendingInterrupts()) if (belongsTo(interrupt, turn, last)) showCard(turn, interrupt);
}

/** The stream said the turn paused: show its cards in the live turn at once. */
export function showInterrupts(turn, interrupts) {
  turn.setThinking(false);
  for (const interrupt of interrupts ?? []) showCard(turn, interrupt);
  const names = (interrupts ?? []).flatMap(actionsOf).map((action) => action.name);
  announce(names.length ? `Waiting for your approval to run ${names.join(", ")}.` : "The agent waits for your input.");
}

function showCard(turn, interrupt) {
  for (const action of actionsOf(interrupt)) {
    const step = turn.steps.get(action.id);
    if (!step) continue;
    step.details.dataset.state = "waiting"; // neither running nor failed: it has not run yet
    step.status.replaceChildren("waiting for approval");
  }
  turn.waiting = true;
  turn.card(`approval-${interrupt.id}`, approvalCard(turn, interrupt));
}

function approvalCard(turn, interrupt) {
  const id = `approval-${++cardCount}`;
  const actions = actionsOf(interrupt);
  const allowed = new Set(
    (interrupt.value?.review_configs ?? []).flatMap((config) => config.allowed_decisions ?? []),
  );
  const can = (decision) => allowed.size === 0 || allowed.has(decision);
  const names = actions.map((action) => action.name).join(", ");
  const heading = actions.length ? `Approval needed: ${names}` : "The agent waits for your input";
  const card = h(
    "section",
    { class: "approval", role: "region", "aria-labelledby": `${id}-title`, "data-interrupt": interrupt.id },
    h("h2", { class: "approval-title", id: `${id}-title`, text: heading }),
  );
  for (const action of actions) {
    card.append(
      h("p", { class: "approval-desc", text: action.description || `The agent wants to run ${action.name}.` }),
      argsView(action.args),
    );
  }
  if (!actions.length)
    card.append(h("pre", { class: "approval-value", text: JSON.stringify(interrupt.value, null, 2) }));
  const panel = h("div", { class: "approval-panel" });
  const buttons = h("div", { class: "approval-actions", role: "group", "aria-label": "Decision" });
  const button = (text, cls, onclick) =>
    h("button", { class: `btn ${cls}`, type: "button", text, onclick, disabled: busy() });
  const form = (name, spec) => (e) => openForm(turn, interrupt, panel, e.currentTarget, `${id}-${name}`, spec());
  if (!actions.length) buttons.append(button("Answer", "btn-primary", form("answer", answerForm)));
  else if (can("approve"))
    buttons.append(button("Approve", "btn-primary", () => decide(turn, interrupt, { decision: "approve" })));
  if (actions.length && can("edit")) buttons.append(button("Edit", "", form("edit", () => editForm(actions))));
  if (actions.length && can("reject"))
    buttons.append(button("Reject", "btn-danger-quiet", form("reject", rejectForm)));
  if (actions.length && can("respond")) buttons.append(button("Respond", "", form("respond", respondForm)));
  card.append(buttons, panel);
  // A message held back stays explained when the conversation is drawn again (a refresh).
  if (held && held.threadId === state.thread?.thread_id) card.append(heldNote(held.content));
  return card;
}

/** The arguments as `name: value` rows: strings as they are, anything else as JSON. */
function argsView(args) {
  const entries = Object.entries(args ?? {});
  if (!entries.length) return h("p", { class: "approval-desc", text: "No arguments." });
  return h(
    "dl",
    { class: "fields approval-args", "aria-label": "Arguments" },
    ...entries.flatMap(([name, value]) => [
      h("dt", { text: name }),
      h("dd", { text: typeof value === "string" ? value : JSON.stringify(value) }),
    ]),
  );
}

/**
 * A form in the card's panel (the decision buttons hide meanwhile): the field of `spec`, an error
 * line, Cancel and submit. `spec.decision(text)` turns the field's text into `{value}` (the
 * decision sent) or `{problem}` (said next to the field; nothing is sent).
 */
function openForm(turn, interrupt, panel, opener, id, spec) {
  const { field, label, submitText, decision } = spec;
  const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  field.id = id;
  const buttons = opener.parentElement;
  const close = () => {
    panel.replaceChildren();
    buttons.hidden = false;
    opener.focus(); // back where the user was
  };
  const submit = (event) => {
    event.preventDefault();
    const made = decision(field.value.trim());
    if (!("problem" in made)) return decide(turn, interrupt, made.value);
    error.textContent = made.problem;
    error.hidden = false;
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", error.id);
    field.focus();
  };
  const onkeydown = (event) => {
    if (event.key !== "Escape") return;
    event.stopPropagation();
    close();
  };
  const form = h(
    "form",
    { class: "approval-form", novalidate: true, onsubmit: submit, onkeydown },
    h("label", { for: id, text: label }),
    field,
    error,
    h(
      "div",
      { class: "dialog-actions" },
      h("button", { class: "btn", type: "button", text: "Cancel", onclick: close }),
      h("button", { class: "btn btn-primary", type: "submit", text: submitText }),
    ),
  );
  buttons.hidden = true;
  panel.replaceChildren(form);
  field.focus();
}

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

/** Edit: the arguments as JSON (a list of them when several calls wait), checked before sending. */
function editForm(actions) {
  const one = actions.length === 1;
  const field = h("textarea", { class: "edit-box mono", rows: "5", spellcheck: "false" });
  field.value = JSON.stringify(one ? actions[0].args : actions.map((a) => a.args), null, 2);
  const decision = (text) => {
    let args;
    try {
      args = JSON.parse(text);
    } catch (error) {
      return { problem: `This is not valid JSON: ${error.message}` };
    }
    if (one)
      return isObject(args)
        ? { value: { decision: "edit", args } }
        : { problem: 'The arguments must be a JSON object, like {"name": "value"}.' };
    if (!Array.isArray(args) || args.length !== actions.length || !args.every(isObject))
      return { problem: `Give a list of ${actions.length} JSON objects, one per call, in order.` };
    return { value: { decisions: args.map((a) => ({ decision: "edit", args: a })) } };
  };
  const label = one ? `Arguments of ${actions[0].name} (JSON)` : "Arguments of each call (a JSON list)";
  return { field, label, submitText: "Run with these arguments", decision };
}

/** Reject, with an optional reason (the model is told it and answers without the call). */
const rejectForm = () => ({
  field: h("input", { type: "text", maxlength: "500", placeholder: "Say why, if you like" }),
  label: "Reason (optional)",
  submitText: "Reject the call",
  decision: (reason) => ({ value: reason ? { decision: "reject", reason } : { decision: "reject" } }),
});

/** Respond: the model reads this text as the call's result (the call does not run). */
const respondForm = () => ({
  field: h("textarea", { class: "edit-box", rows: "3" }),
  label: "Your answer, read by the agent in place of the call's result",
  submitText: "Send this answer",
  decision: (text) =>
    text
      ? { value: { decision: "respond", text } }
      : { problem: "Write an answer first: the agent reads it instead of running the call." },
});

/** A graph's own `interrupt()` (not an approval): the answer is any JSON, or else the text as typed. */
const answerForm = () => ({
  field: h("textarea", { class: "edit-box mono", rows: "3", spellcheck: "false" }),
  label: "Your answer (JSON, or plain text)",
  submitText: "Send the answer",
  decision: (text) => {
    if (!text) return { problem: "Write an answer first." };
    try {
      return { value: JSON.parse(text) };
    } catch {
      return { value: text }; // not JSON: the graph gets the text as a string
    }
  },
});

/** Send the decision as a resume of the open thread; the resumed run streams in below. */
async function decide(turn, interrupt, decision) {
  const thread = state.thread;
  if (!thread || busy()) return;
  held = null;
  hideBanner("waiting");
  const view = state.view;
  const card = turn.cards?.get(`approval-${interrupt.id}`);
  for (const button of card?.querySelectorAll("button") ?? []) button.disabled = true;
  const run = { threadId: thread.thread_id, runId: null, content: null, own: false, live: null, stopping: false };
  run.decision = true; // a resume: nothing to put back in the box if it fails
  state.running = run;
  renderControls();
  let started;
  try {
    started = await api.startRun(thread.thread_id, { resume: decision, interrupt_id: interrupt.id });
  } catch (error) {
    if (state.running === run) state.running = null;
    if (view !== state.view) return;
    renderControls();
    if (error instanceof ApiError && error.code === "not_interrupted") {
      toast("This call was already decided, in another tab or on another device.");
      return refreshThread();
    }
    for (const button of card?.querySelectorAll("button") ?? []) button.disabled = false;
    return report(error, "Could not send the decision");
  }
  // The thread runs again: no card, no marker; the pending step is shown again by the run.
  upsertThread({ ...thread, status: "busy", interrupts: [] });
  card?.remove();
  for (const action of actionsOf(interrupt)) turn.steps.get(action.id)?.details.remove();
  run.runId = started.run_id;
  if (run.stopping) cancel(run); // Stop was pressed while the decision was on its way
  run.live = new LiveTurn(null);
  for (const action of actionsOf(interrupt))
    run.live.turn.toolCall({ tool_call_id: action.id, name: action.name, args: decision?.args ?? action.args });
  renderThreadList();
  scrollToBottom(true);
  const record = { threadId: run.threadId, runId: run.runId, content: null, lastEventId: null, events: [] };
  // The thread's first question paused: it gets its better title once this answers it.
  record.first = !state.earlierCursor && state.messages.filter((m) => m.role === "user").length === 1;
  await follow(record, run, view);
}

/**
 * A message typed while the thread waits for a decision is not sent: it stays in the box, the
 * card says why and offers to send it anyway (the pending call is then never run).
 */
export function explainWaiting(content) {
  held = { threadId: state.thread?.thread_id ?? null, content };
  const card = ui.messages.querySelector(".approval");
  showBanner(
    "warn",
    "This thread waits for your decision on the card above. Your message is kept in the box.",
    { key: "waiting", dismissible: true },
  );
  if (!card) return refreshThread();
  card.querySelector(".approval-note")?.remove();
  card.append(heldNote(content));
  card.scrollIntoView({ block: "nearest" });
  card.querySelector(".approval-actions button")?.focus();
}

function heldNote(content) {
  return h(
    "div",
    { class: "approval-note" },
    h("p", { text: "Your message was not sent: the agent first needs your decision here." }),
    h("button", {
      class: "btn btn-small",
      type: "button",
      text: "Send my message anyway",
      onclick: () => {
        held = null;
        hideBanner("waiting");
        send(ui.input.value.trim() || content, { abandon: true });
      },
    }),
  );
}

/** Whether a plain message now would be refused (the open thread waits for a decision). */
export const waitsForDecision = () => pendingInterrupts().length > 0 && !state.running;

/** Re-render the open conversation after its status changed elsewhere (cards come and go). */
export function syncApprovals(before, after) {
  if ((before?.status === "interrupted") !== (after?.status === "interrupted") && !state.running)
    renderTranscript({ keepScroll: true });
}
