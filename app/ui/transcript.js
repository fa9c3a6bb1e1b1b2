// The transcript's pieces: a user message, and one block per assistant turn holding its tool
// steps (compact, expandable <details>), its answer and any card a graph adds (`card()`). The same
// code renders stored messages and a turn streaming in, so a reloaded thread looks exactly like
// it did live. Each message is an <article> named by its speaker, so a screen reader can walk
// the conversation message by message.

import { h, icon } from "./dom.js";

/** Renders one assistant turn; fed either by stored messages or live by the SSE events. */
export class TurnView {
  constructor(container) {
    this.body = h("div", { class: "turn-body" });
    this.root = h(
      "article",
      { class: "turn", "aria-label": "Assistant" },
      h("div", { class: "avatar", "aria-hidden": "true" }, icon("bot")),
      this.body,
    );
    this.steps = new Map(); // tool_call_id -> {details, status, body}
    this.answers = new Map(); // message id -> element
    this.thinking = null;
    container.append(this.root);
  }

  setThinking(on) {
    this.thinking?.remove();
    this.thinking = null;
    if (!on) return;
    this.thinking = h(
      "div",
      { class: "thinking", role: "status", "aria-label": "The agent is working" },
      h("span"),
      h("span"),
      h("span"),
    );
    this.body.append(this.thinking);
  }

  toolCall({ tool_call_id: id, name, args }) {
    if (this.steps.has(id)) return this.steps.get(id);
    const status = h(
      "span",
      { class: "step-status" },
      h("span", { class: "spinner", "aria-hidden": "true" }),
      "running",
    );
    const body = h(
      "div",
      { class: "step-body" },
      h("div", { class: "step-label", text: "Arguments" }),
      h("pre", { text: JSON.stringify(args ?? {}, null, 2) }),
    );
    const argText = Object.entries(args ?? {})
      .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
      .join(", ");
    const details = h(
      "details",
      { class: "step", "data-state": "running", "data-tool-call": id },
      h(
        "summary",
        {},
        h("span", { class: "step-name", text: name }),
        h("span", { class: "step-args", text: argText }),
        status,
      ),
      body,
    );
    this.body.append(details);
    const step = { details, status, body };
    this.steps.set(id, step);
    return step;
  }

  toolResult({ tool_call_id: id, name, content }) {
    const step = this.steps.get(id) ?? this.toolCall({ tool_call_id: id, name, args: {} });
    const failed = /^tool failed:/i.test(content);
    step.details.dataset.state = failed ? "failed" : "done";
    step.status.replaceChildren(...(failed ? ["failed"] : [icon("check"), "done"]));
    step.body.append(h("div", { class: "step-label", text: "Result" }), resultView(content));
    // search_memory lists what it found as "- [key] text" lines: the answer draws on them.
    if (name === "search_memory" && content.startsWith("- [")) this.usedMemory = true;
  }

  answer(id) {
    let node = this.answers.get(id);
    if (!node) {
      node = h("div", { class: "answer" });
      this.answers.set(id, node);
      this.body.append(node);
    }
    return node;
  }

  token({ message_id: id, delta }) {
    this.setThinking(false);
    const node = this.answer(id);
    node.classList.add("streaming");
    node.append(delta);
  }

  message(message) {
    for (const call of message.tool_calls ?? [])
      this.toolCall({ tool_call_id: call.id, name: call.name, args: call.args });
    if (message.content) this.answer(message.id).textContent = message.content;
  }

  finish() {
    this.setThinking(false);
    if (this.usedMemory && !this.memoryMark) {
      this.memoryMark = h("p", { class: "memory-used", text: "Answered from your memories" });
      this.body.append(this.memoryMark);
    }
    for (const node of this.answers.values()) node.classList.remove("streaming");
    for (const step of this.steps.values()) {
      if (step.details.dataset.state === "running") {
        step.details.dataset.state = "failed";
        step.status.replaceChildren("no result");
      }
    }
  }

  /**
   * Thumbs up and down under a completed turn. `current` is the rating given ("up", "down" or
   * null); `rate(rating)` stores one and resolves when the service has it.
   */
  feedback(current, rate) {
    this.feedbackBar?.remove();
    const buttons = {};
    const show = (rating) => {
      for (const [name, button] of Object.entries(buttons))
        button.setAttribute("aria-pressed", String(name === rating));
    };
    for (const [rating, label, glyph] of [
      ["up", "Good answer", "thumbUp"],
      ["down", "Bad answer", "thumbDown"],
    ]) {
      buttons[rating] = h(
        "button",
        {
          type: "button",
          class: "icon-btn thumb",
          title: label,
          "aria-label": label,
          "data-rating": rating,
          onclick: async () => {
            for (const button of Object.values(buttons)) button.disabled = true;
            try {
              if (await rate(rating)) show(rating);
            } finally {
              for (const button of Object.values(buttons)) button.disabled = false;
            }
          },
        },
        icon(glyph),
      );
    }
    show(current);
    this.feedbackBar = h("div", { class: "feedback", role: "group", "aria-label": "Rate this answer" });
    this.feedbackBar.append(buttons.up, buttons.down);
    this.body.append(this.feedbackBar);
  }

  /** The answer's text so far (what Copy copies). */
  text() {
    return [...this.answers.values()].map((node) => node.textContent).join("\n\n");
  }

  /**
   * Add a card of some kind under the turn's steps (an approval, a form ...): `node` is built by
   * whoever knows that kind; the turn keeps cards in order and replaces one of the same key.
   */
  card(key, node) {
    this.cards ??= new Map();
    this.cards.get(key)?.remove();
    this.cards.set(key, node);
    this.body.append(node);
    return node;
  }

  /** A bar of actions (copy, regenerate, branch switcher ...) under the answer. */
  actions(...children) {
    this.actionBar?.remove();
    this.actionBar = h("div", { class: "msg-actions", role: "group", "aria-label": "Answer actions" }, ...children);
    this.body.append(this.actionBar);
  }

  /** The turn failed: say so (nothing of it was saved) and offer `actions` (Retry ...). */
  fail(text, ...actions) {
    this.finish();
    this.root.classList.add("failed");
    for (const step of this.steps.values()) {
      // A step that ran is not "done" for a turn that was not saved.
      if (step.details.dataset.state === "done") {
        step.details.dataset.state = "unsaved";
        step.status.replaceChildren("not saved");
      }
    }
    this.body.append(h("div", { class: "turn-error", role: "alert" }, h("p", { text }), ...actions));
  }
}

/** Tool results shaped `key: value; key: value` (the demo's tools) read best as a table. */
export function resultView(content) {
  const parts = content.split("; ");
  const pairs = parts.map((part) => part.match(/^([\w .-]{1,40}): (.*)$/s));
  if (parts.length > 1 && pairs.every(Boolean)) {
    return h(
      "dl",
      { class: "fields" },
      ...pairs.flatMap(([, key, value]) => [h("dt", { text: key }), h("dd", { text: value })]),
    );
  }
  return h("pre", { text: content });
}

const LONG_MESSAGE = 600; // characters; longer questions (pasted logs) show their start

/** A question, collapsed with "Show more" when it is long; `actions` go under the bubble. */
export function userMessage(content, ...actions) {
  const bubble = h("div", { class: "bubble", text: content });
  const article = h("article", { class: "msg-user", "aria-label": "You" }, bubble);
  if (content.length > LONG_MESSAGE || content.split("\n").length > 12) {
    bubble.classList.add("collapsed");
    const toggle = h("button", {
      class: "btn btn-quiet btn-small more",
      type: "button",
      "aria-expanded": "false",
      text: "Show more",
      onclick: () => {
        const open = bubble.classList.toggle("collapsed") === false;
        toggle.textContent = open ? "Show less" : "Show more";
        toggle.setAttribute("aria-expanded", String(open));
      },
    });
    article.append(toggle);
  }
  if (actions.length)
    article.append(h("div", { class: "msg-actions", role: "group", "aria-label": "Question actions" }, ...actions));
  return article;
}
