// Stop: cancel the run this page started on the open thread (a question, or a decision sent from
// an approval card), and show what remains once it has stopped. Nothing of a stopped run is
// saved: a question goes back in the box; a decision's call waits again, its card back.

import { ApiError, api } from "./api.js";
import { putBack } from "./composer.js";
import { refreshThread, renderControls, renderTranscript } from "./conversation.js";
import { dropRecord } from "./live.js";
import { announce, report, state, toast, ui } from "./page.js";

/** Whether the page's running run is its own to stop (not one of another tab or client). */
export const stoppable = (run = state.running) => Boolean(run && (run.own || run.decision));

/** Ask the service to cancel `run` (its id known). */
export function cancel(run) {
  api.cancelRun(run.threadId, run.runId).catch((error) => {
    if (error instanceof ApiError && error.code === "run_not_active") return; // it had just ended
    run.stopping = false;
    renderControls();
    report(error, "Could not stop the turn");
  });
}

/** Stop (the button) and Escape: cancel the running run, if it is this page's own. */
export function stop() {
  const run = state.running;
  if (!stoppable(run) || run.stopping) return;
  run.stopping = true;
  renderControls();
  if (run.runId) cancel(run); // else as soon as the service answers with the run
}

/** `run` ended cancelled (here or elsewhere); the page no longer follows it. */
export async function stopped(record, run) {
  if (run.decision) {
    // The service left the thread waiting on the same call: its card comes back with it.
    await refreshThread();
    toast("Stopped: nothing was saved. The call was not carried out and waits for your decision again.");
    announce("Stopped. The call waits for your decision again.");
    ui.messages.querySelector(".approval .approval-actions button:not(:disabled)")?.focus();
    return;
  }
  if (!run.own) return refreshThread();
  dropRecord(record.threadId);
  putBack(record.threadId, record.content);
  renderTranscript({ keepScroll: true });
  toast("Stopped: nothing was saved. Your question is back in the box.");
  announce("Stopped. Your question is back in the box.");
  ui.input.focus();
}
