// Stored messages on screen, with their actions: copy a question or an answer, edit a question
// and send it again, regenerate an answer (both fork from the checkpoint before that turn), and
// a `< 1/2 >` switcher on a question that has other versions (the branches made that way).

import { api } from "./api.js";
import { attachApprovals } from "./approvals.js";
import { backToLatest, viewCheckpoint } from "./history.js";
import { h, icon } from "./dom.js";
import { busy, report, state, toast } from "./page.js";
import { send } from "./runs.js";
import { TurnView, userMessage } from "./transcript.js";
import { tipOf, versionsOf } from "./tree.js";

/** The run's checkpoint in the open thread's tree (every message of a turn carries its run id). */
function nodeOfRun(runId) {
  if (!runId || !state.tree) return null;
  for (const node of state.tree.nodes.values()) if (node.run_id === runId) return node;
  return null;
}

/** Where a turn starts: the checkpoint before it, or the thread's very start. */
const startOf = (node) => node.parent_checkpoint_id ?? "~start";

export function renderMessages(container, messages) {
  container.replaceChildren();
  let turn = null;
  let runId = null;
  let question = null;
  const close = (last = false) => {
    if (turn) attachApprovals(turn, last); // a call waiting for a decision: its card
    if (turn) finishTurn(turn, runId, question);
    turn = null;
    runId = null;
  };
  messages.forEach((message, index) => {
    if (message.role === "user" || message.role === "system") {
      close();
      if (message.role === "system") {
        container.append(h("div", { class: "msg-system", text: message.content }));
        return;
      }
      question = { message, index };
      container.append(userMessage(message.content, ...questionActions(message, index)));
    } else {
      turn ??= new TurnView(container);
      runId = message.run_id ?? runId;
      if (message.role === "tool") turn.toolResult(message);
      else turn.message(message);
    }
  });
  close(true);
}

/** Ends a stored turn's block and, for a turn the service completed, offers its actions. */
export function finishTurn(turn, runId, question) {
  turn.finish();
  const threadId = state.thread?.thread_id;
  if (!runId || !threadId || turn.waiting) return; // no answer to copy or rate yet: its card is the action
  const node = nodeOfRun(runId);
  const actions = [copyButton(() => turn.text(), "Copy the answer")];
  if (node && question)
    actions.push(
      actionButton("Regenerate the answer", "refresh", () =>
        send(question.message.content, { fork: startOf(node), keep: state.messages.slice(0, question.index) }),
      ),
    );
  turn.actions(...actions);
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
  turn.actionBar.append(turn.feedbackBar);
}

function questionActions(message, index) {
  const actions = [copyButton(() => message.content, "Copy the question")];
  const node = nodeOfRun(message.run_id);
  if (!node) return actions;
  actions.push(actionButton("Edit the question", "pencil", (event) => editQuestion(event, message, index, node)));
  const versions = versionsOf(state.tree, node);
  if (versions.length > 1) actions.push(switcher(versions, versions.indexOf(node)));
  return actions;
}

function actionButton(label, glyph, onclick) {
  return h(
    "button",
    { class: "icon-btn small", type: "button", title: label, "aria-label": label, disabled: busy(), onclick },
    icon(glyph),
  );
}

function copyButton(text, label) {
  return actionButton(label, "copy", async () => {
    try {
      await navigator.clipboard.writeText(text());
      toast("Copied");
    } catch {
      toast("The browser did not allow copying here");
    }
  });
}

/** `< 2/3 >`: the versions of one question; picking one shows its branch where it ends now. */
function switcher(versions, current) {
  const go = (index) => {
    const tip = tipOf(state.tree, versions[index]);
    if (tip.is_head) backToLatest();
    else viewCheckpoint(tip);
  };
  return h(
    "span",
    { class: "switcher", role: "group", "aria-label": "Versions of this question" },
    h(
      "button",
      {
        class: "icon-btn small",
        type: "button",
        "aria-label": "Previous version",
        disabled: current === 0 || busy(),
        onclick: () => go(current - 1),
      },
      h("span", { "aria-hidden": "true", text: "‹" }),
    ),
    h("span", { class: "switcher-pos", "aria-hidden": "true", text: `${current + 1}/${versions.length}` }),
    h("span", { class: "visually-hidden", text: `version ${current + 1} of ${versions.length}` }),
    h(
      "button",
      {
        class: "icon-btn small",
        type: "button",
        "aria-label": "Next version",
        disabled: current === versions.length - 1 || busy(),
        onclick: () => go(current + 1),
      },
      h("span", { "aria-hidden": "true", text: "›" }),
    ),
  );
}

/** The question becomes a box in place: Send forks from before it, Cancel puts it back. */
function editQuestion(event, message, index, node) {
  const article = event.currentTarget.closest("article");
  const field = h("textarea", { class: "edit-box", rows: "3", "aria-label": "Edit the question" });
  field.value = message.content;
  const restore = () => editor.replaceWith(article);
  const submit = () => {
    const text = field.value.trim();
    if (!text) return;
    send(text, { fork: startOf(node), keep: state.messages.slice(0, index) });
  };
  field.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    } else if (e.key === "Escape") {
      e.stopPropagation();
      restore();
      article.querySelector("button[aria-label='Edit the question']")?.focus();
    }
  });
  const editor = h(
    "div",
    { class: "msg-edit" },
    field,
    h(
      "div",
      { class: "dialog-actions" },
      h("button", { class: "btn", type: "button", text: "Cancel", onclick: restore }),
      h("button", { class: "btn btn-primary", type: "button", text: "Send", onclick: submit }),
    ),
  );
  article.replaceWith(editor);
  field.focus();
}
