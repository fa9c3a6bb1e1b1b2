// The transcript's pieces: a user bubble, and one block per assistant turn holding its tool
// steps (compact, expandable <details>) and its answer. The same code renders stored
// messages and a turn streaming in, so a reloaded thread looks exactly like it did live.

import { h, icon } from "./dom.js";

/** Renders one assistant turn; fed either by stored messages or live by the SSE events. */
export class TurnView {
  constructor(container) {
    this.body = h("div", { class: "turn-body" });
    this.root = h(
      "div",
      { class: "turn" },
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

  fail(text) {
    this.finish();
    this.body.append(h("div", { class: "turn-error", role: "alert", text }));
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

export function userBubble(content) {
  return h("div", { class: "msg-user" }, h("div", { class: "bubble", text: content }));
}
