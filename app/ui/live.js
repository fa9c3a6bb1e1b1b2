// What a tab keeps of the runs it sent (sessionStorage, so a reload can rejoin them from the last
// event seen), and a run on screen while it streams.

import { showInterrupts } from "./approvals.js";
import { ui } from "./page.js";
import { TurnView, userMessage } from "./transcript.js";

// One record per thread this tab sent a turn to: {threadId, runId, content, fork, lastEventId,
// events, failed}. It outlives a reload (sessionStorage) and goes once the turn is saved.
const recordKey = (threadId) => `lma.run.${threadId}`;

export function saveRecord(record) {
  try {
    sessionStorage.setItem(recordKey(record.threadId), JSON.stringify(record));
  } catch {
    // Storage full: a reload then replays the run's stream from its start instead.
  }
}

export function loadRecord(threadId) {
  try {
    return JSON.parse(sessionStorage.getItem(recordKey(threadId)) ?? "null");
  } catch {
    return null;
  }
}

export const dropRecord = (threadId) => sessionStorage.removeItem(recordKey(threadId));

/** Events as the record keeps them: a run of tokens of one message is one event. */
export function remember(record, name, data) {
  const last = record.events.at(-1);
  if (name === "token" && last?.[0] === "token" && last[1].message_id === data.message_id)
    last[1] = { ...last[1], delta: last[1].delta + data.delta };
  else record.events.push([name, data]);
}

/** A turn on screen while it runs: the question (known, or from `run_start`) and the answer. */
export class LiveTurn {
  constructor(content) {
    this.question = content === null ? null : userMessage(content);
    if (this.question) ui.messages.append(this.question);
    this.turn = new TurnView(ui.messages);
    this.turn.setThinking(true);
    ui.welcome.hidden = true;
  }

  apply(name, data) {
    const turn = this.turn;
    if (name === "run_start" && !this.question) {
      const asked = (data.input ?? []).findLast((m) => m.role === "user");
      if (asked) {
        this.question = userMessage(asked.content);
        ui.messages.insertBefore(this.question, turn.root);
      }
    } else if (name === "token") turn.token(data);
    else if (name === "tool_call") {
      turn.setThinking(false);
      turn.toolCall(data);
    } else if (name === "tool_result") {
      if (!turn.steps.has(data.tool_call_id)) adoptStep(turn, data);
      turn.toolResult(data);
      turn.setThinking(true); // the model reads the result next
    } else if (name === "message") turn.message(data);
    else if (name === "interrupt") showInterrupts(turn, data.interrupts); // paused for a decision
  }

  remove() {
    this.question?.remove();
    this.turn.root.remove();
  }
}

/**
 * A resumed turn (an approved call) runs a call that an earlier, stored turn made: its step moves
 * into this turn, with its arguments, rather than showing twice.
 */
function adoptStep(turn, { tool_call_id: id, name }) {
  const stored = ui.messages.querySelector(`details.step[data-tool-call="${CSS.escape(id ?? "")}"]`);
  if (!stored || turn.root.contains(stored)) return;
  let args = {};
  try {
    args = JSON.parse(stored.querySelector(".step-body pre")?.textContent ?? "{}");
  } catch {
    // Its arguments were not JSON: the step shows none.
  }
  stored.remove();
  turn.toolCall({ tool_call_id: id, name, args });
}
