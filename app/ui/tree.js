// A thread's checkpoints as a tree: which branch each one is on, its turn number, and the
// question that produced it. Pure functions, no DOM.
//
// The API gives a flat list (newest first) where each checkpoint names its parent; a fork makes
// several checkpoints share a parent. Branches are numbered in the order they were created: the
// first child of a checkpoint continues its parent's branch, every later child starts a new one.
// Numbers never change as the tree grows, so "branch 2" means the same thing on every visit.

/**
 * @param {Array<object>} checkpoints as from GET /threads/{id}/history, any order
 * @returns {{nodes: Map<string, object>, newestFirst: object[], branchCount: number,
 *            head: object|null, leaves: object[]}}
 */
export function buildTree(checkpoints) {
  const nodes = new Map();
  checkpoints.forEach((cp, index) => {
    nodes.set(cp.checkpoint_id, {
      ...cp,
      order: index,
      branch: 0,
      turn: 0,
      forkOf: null,
      children: 0,
      kids: [],
      depth: 0,
    });
  });
  const time = (node) => Date.parse(node.created_at ?? "") || 0;
  // Oldest first; the API's order (newest first) breaks ties.
  const ascending = [...nodes.values()].sort((a, b) => time(a) - time(b) || b.order - a.order);

  let branchCount = 0;
  const continued = new Set();
  for (const node of ascending) {
    const parent = node.parent_checkpoint_id ? nodes.get(node.parent_checkpoint_id) : undefined;
    node.turn = parent ? parent.turn + 1 : 1;
    if (parent) {
      parent.children += 1;
      parent.kids.push(node);
    }
    if (parent && !continued.has(parent.checkpoint_id)) {
      continued.add(parent.checkpoint_id);
      node.branch = parent.branch;
      node.depth = parent.depth;
    } else {
      branchCount += 1;
      node.branch = branchCount;
      node.forkOf = parent ?? null;
      node.depth = parent ? parent.depth + 1 : 0;
    }
  }
  const newestFirst = [...ascending].reverse();
  const head = newestFirst.find((node) => node.is_head) ?? null;
  const roots = ascending.filter((n) => !n.parent_checkpoint_id || !nodes.has(n.parent_checkpoint_id));
  return { nodes, newestFirst, roots, branchCount, head, leaves: newestFirst.filter((n) => n.children === 0) };
}

/**
 * The checkpoints as the tree reads top to bottom: each branch in turn order, and the branches
 * that fork off it after it, one level deeper (`node.depth`), in the order they were made.
 */
export function treeOrder(tree) {
  const out = [];
  const visit = (node) => {
    out.push(node);
    node.kids.forEach(visit);
  };
  tree.roots.forEach(visit);
  return out;
}

/** The checkpoints that answer the same conversation as `node` with another turn (its versions). */
export function versionsOf(tree, node) {
  const parent = node.parent_checkpoint_id ? tree.nodes.get(node.parent_checkpoint_id) : null;
  return parent ? parent.kids : tree.roots;
}

/** Where a branch through `node` ends now: the head if it is below, else the newest tip. */
export function tipOf(tree, node) {
  let best = null;
  const stack = [node];
  while (stack.length) {
    const cur = stack.pop();
    if (cur.is_head) return cur;
    if (cur.children === 0 && (!best || Date.parse(cur.created_at) > Date.parse(best.created_at))) best = cur;
    stack.push(...cur.kids);
  }
  return best;
}

/** The checkpoints from `node` back to the first turn (the branch as the conversation saw it). */
export function lineage(tree, node) {
  const path = [];
  for (
    let cur = node;
    cur;
    cur = cur.parent_checkpoint_id ? tree.nodes.get(cur.parent_checkpoint_id) : null
  ) {
    path.push(cur);
  }
  return path;
}

/**
 * Each checkpoint's question: the last user message of the turn that produced it. `messages` is
 * the full state at `leaf`; a checkpoint holds the first `message_count` of them, and a turn's
 * request always ends with a user message, so one state read labels every checkpoint on that
 * branch (also when retention compacted the older checkpoints away).
 */
export function questionsAlong(tree, leaf, messages) {
  const found = new Map();
  for (const node of lineage(tree, leaf)) {
    const upTo = messages.slice(0, node.message_count ?? messages.length);
    const question = upTo.findLast((m) => m.role === "user");
    if (question) found.set(node.checkpoint_id, question.content);
  }
  return found;
}
