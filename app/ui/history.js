// History: the thread's checkpoints as a tree (each branch in turn order, forks indented under
// the turn they forked from); view one as it was, and continue from there.

import { api } from "./api.js";
import { openThread, renderBranch, renderSnapshotBar, renderTranscript } from "./conversation.js";
import { h, plural, shortTime } from "./dom.js";
import { NARROW, busy, report, state, ui } from "./page.js";
import { buildTree, lineage, questionsAlong, treeOrder } from "./tree.js";

const HISTORY_PAGE = 200;
const HISTORY_MAX_PAGES = 10; // 2000 checkpoints: far beyond any conversation a person reads
const LABEL_CHARS = 80; // a pasted log as a question makes a label of its first words

let historyLoads = 0; // the latest load wins: an older answer arriving late is dropped

export async function loadHistory() {
  const thread = state.thread;
  const view = state.view;
  const load = ++historyLoads;
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
    if (view !== state.view || load !== historyLoads) return;
    state.tree = buildTree(checkpoints);
    state.tree.complete = complete;
    if (state.viewing) state.viewing = state.tree.nodes.get(state.viewing.checkpoint_id) ?? null;
    renderSnapshotBar();
    renderTimeline();
    // The messages' actions (edit, regenerate, versions) need the tree; a live turn is left alone.
    if (!state.running || state.running.ended) renderTranscript({ keepScroll: true });
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
    if (result.status === "fulfilled") for (const [id, question] of result.value) state.questions.set(id, question);
  }
  renderTimeline();
}

const clip = (text) => {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > LABEL_CHARS ? `${line.slice(0, LABEL_CHARS - 1).trimEnd()}…` : line;
};

export function renderTimeline() {
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
  // Update the items in place, keyed by checkpoint: the timeline re-renders whenever the history
  // or a question label arrives, and replacing a button between a press and its release would
  // swallow the user's click.
  const existing = new Map([...ui.timeline.children].map((li) => [li.dataset.checkpoint, li]));
  const items = treeOrder(tree).map((node) => {
    const li = existing.get(node.checkpoint_id) ?? timelineItem();
    const question = state.questions.get(node.checkpoint_id);
    const viewing = state.viewing ? state.viewing.checkpoint_id === node.checkpoint_id : node.is_head;
    const sub = [`Branch ${node.branch}`, shortTime(node.created_at)];
    if (node.forkOf) sub.push(`forked from turn ${node.forkOf.turn}`);
    li.node = node;
    li.dataset.checkpoint = node.checkpoint_id;
    li.className = `cp branch-${node.branch % 6}${onBranch.has(node.checkpoint_id) ? " on-branch" : ""}`;
    li.style.setProperty("--depth", String(Math.min(node.depth, 6)));
    const button = li.firstElementChild;
    button.setAttribute("aria-pressed", String(viewing));
    button.disabled = busy();
    const title = button.querySelector(".cp-title");
    title.textContent = `Turn ${node.turn}${question ? ` · ${clip(question)}` : ""}`;
    title.title = question ?? "";
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

export async function viewCheckpoint(node) {
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

export function backToLatest() {
  if (state.thread) openThread(state.thread.thread_id, { push: false });
}

export function openHistory() {
  ui.history.hidden = false;
  ui.historyBtn.setAttribute("aria-expanded", "true");
  renderTimeline();
  loadQuestions();
  ui.closeHistory.focus();
}

export function closeHistory() {
  if (ui.history.hidden) return false;
  ui.history.hidden = true;
  ui.historyBtn.setAttribute("aria-expanded", "false");
  if (ui.history.contains(document.activeElement)) ui.historyBtn.focus();
  return true;
}

export function initHistory() {
  ui.historyBtn.addEventListener("click", () => (ui.history.hidden ? openHistory() : closeHistory()));
  ui.closeHistory.addEventListener("click", closeHistory);
  ui.backToLatest.addEventListener("click", backToLatest);
}
