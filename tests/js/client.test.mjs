// The Agent Protocol through the official JS client, against a running service.
// LG_API_URL names it (http://127.0.0.1:<port>/lg); tests/e2e/test_js_clients.py starts one.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Client } from "@langchain/langgraph-sdk";

import { QUESTION, FOLLOW_UP, apiUrl, droppingProxy } from "./service.mjs";

const client = new Client({ apiUrl: apiUrl() });
const ASK = { messages: [{ role: "user", content: QUESTION }] };

async function collect(stream) {
  const parts = [];
  for await (const part of stream) parts.push(part);
  return parts;
}

const kinds = (messages) => messages.map((m) => m.type);
// The demo's turn: the question, two tool calls with their results, and the answer.
const TURN = ["human", "ai", "tool", "ai", "tool", "ai"];
const tokensOf = (parts) =>
  parts
    .filter((p) => p.event === "messages" && p.data[0].type === "AIMessageChunk")
    .map((p) => p.data[0].content)
    .join("");

/** The frames a run's stream gives from `lastEventId` on, until the stream ends or `stopAfter` of them. */
async function follow(threadId, runId, { lastEventId, stopAfter = Infinity } = {}) {
  const parts = [];
  for await (const part of client.runs.joinStream(threadId, runId, {
    streamMode: ["values", "messages-tuple"],
    lastEventId,
  })) {
    parts.push(part);
    if (parts.filter((p) => p.id).length >= stopAfter) break; // drops the connection
  }
  return parts;
}

describe("assistants and threads", () => {
  test("assistants.search finds the built-in agent graph", async () => {
    const found = await client.assistants.search({ graphId: "agent" });
    assert.deepEqual(
      found.map((a) => a.graph_id),
      ["agent"],
    );
    assert.equal((await client.assistants.get(found[0].assistant_id)).graph_id, "agent");
    assert.deepEqual(await client.assistants.search({ graphId: "no-such-graph" }), []);
  });

  test("threads.create keeps the metadata and starts empty and idle", async () => {
    const thread = await client.threads.create({ metadata: { team: "js" } });
    assert.equal(thread.status, "idle");
    assert.deepEqual(thread.metadata, { team: "js" });
    assert.deepEqual(thread.values, { messages: [] });
    assert.equal((await client.threads.get(thread.thread_id)).thread_id, thread.thread_id);
  });
});

describe("runs.stream, runs.wait, state and history", () => {
  test("a streamed turn: metadata first, tokens, and values holding the whole conversation", async () => {
    const { thread_id: threadId } = await client.threads.create();
    const first = await collect(
      client.runs.stream(threadId, "agent", { input: ASK, streamMode: ["values", "messages-tuple"] }),
    );
    assert.equal(first[0].event, "metadata");
    const runId = first[0].data.run_id;
    assert.match(runId, /^[0-9a-f-]{36}$/);
    const chunks = first.filter((p) => p.event === "messages" && p.data[0].type === "AIMessageChunk");
    assert.ok(chunks.length > 1, "the answer arrives as several token chunks");
    assert.ok(chunks.every((p) => p.data[1].langgraph_node === "agent" && p.data[1].run_id === runId));
    const answer = tokensOf(first);
    assert.match(answer, /Malware/);
    const values = first.filter((p) => p.event === "values").map((p) => p.data.messages);
    assert.equal(values[0].at(-1).content, QUESTION); // the input first, as saved
    const final = values.at(-1);
    assert.deepEqual(kinds(final), TURN);
    assert.equal(final.at(-1).content, answer);

    const second = await collect(
      client.runs.stream(threadId, "agent", {
        input: { messages: [{ role: "user", content: [{ type: "text", text: FOLLOW_UP }] }] },
        streamMode: ["values", "messages-tuple"],
      }),
    );
    const whole = second.filter((p) => p.event === "values").at(-1).data.messages;
    assert.deepEqual(
      whole.slice(0, final.length).map((m) => m.id),
      final.map((m) => m.id),
      "the second turn's values start with the first turn's messages",
    );
    assert.equal(whole[final.length].content, FOLLOW_UP);
    assert.equal(whole.at(-1).content, tokensOf(second));
    const state = await client.threads.getState(threadId);
    assert.deepEqual(
      state.values.messages.map((m) => m.id),
      whole.map((m) => m.id),
    );
  });

  test("runs.wait answers the values; getState and getHistory show every turn", async () => {
    const { thread_id: threadId } = await client.threads.create();
    assert.deepEqual((await client.threads.getState(threadId)).values, {});
    const first = await client.runs.wait(threadId, "agent", { input: ASK });
    assert.deepEqual(kinds(first.messages), TURN);
    assert.match(first.messages.at(-1).content, /Malware/);
    const second = await client.runs.wait(threadId, "agent", {
      input: { messages: [{ role: "user", content: FOLLOW_UP }] },
    });
    assert.deepEqual(
      second.messages.slice(0, first.messages.length).map((m) => m.id),
      first.messages.map((m) => m.id),
    );

    const state = await client.threads.getState(threadId);
    assert.deepEqual(state.values, second);
    assert.deepEqual(state.next, []);
    const history = await client.threads.getHistory(threadId, { limit: 10 });
    // Each turn, newest first: its checkpoint, then its input state (the question, about to run).
    assert.deepEqual(
      history.map((h) => [h.next, h.values.messages.length]),
      [
        [[], second.messages.length],
        [["agent"], first.messages.length + 1],
        [[], first.messages.length],
        [["agent"], 1],
      ],
    );
    assert.equal(history[0].checkpoint.checkpoint_id, state.checkpoint.checkpoint_id);
    for (const [index, newer] of history.slice(0, -1).entries()) {
      assert.equal(newer.parent_checkpoint.checkpoint_id, history[index + 1].checkpoint.checkpoint_id);
    }
    const older = await client.threads.getState(threadId, history[2].checkpoint.checkpoint_id);
    assert.deepEqual(older.values, first);

    const threadLess = await client.runs.wait(null, "agent", { input: ASK });
    assert.equal(threadLess.messages[0].content, QUESTION);
  });
});

describe("background runs", () => {
  test("joinStream dropped mid-run resumes after lastEventId with nothing lost or repeated", async () => {
    const { thread_id: threadId } = await client.threads.create();
    const run = await client.runs.create(threadId, "agent", { input: ASK });
    const before = await follow(threadId, run.run_id, { stopAfter: 3 });
    const lastEventId = before.filter((p) => p.id).at(-1).id;
    assert.equal((await client.runs.get(threadId, run.run_id)).status, "running", "dropped while it runs");
    const after = await follow(threadId, run.run_id, { lastEventId });
    assert.equal(after[0].event, "metadata");
    assert.equal(after.at(-1).event, "end");
    assert.equal((await client.runs.get(threadId, run.run_id)).status, "success");

    const whole = await follow(threadId, run.run_id);
    const framesOf = (parts) =>
      parts.filter((p) => p.event !== "metadata").map((p) => [p.event, p.data]);
    assert.deepEqual([...framesOf(before), ...framesOf(after)], framesOf(whole));
    assert.equal(tokensOf(whole), whole.filter((p) => p.event === "values").at(-1).data.messages.at(-1).content);
  });

  test("a running run cancelled with wait ends interrupted, and its stream ends", async () => {
    const { thread_id: threadId } = await client.threads.create();
    const run = await client.runs.create(threadId, "agent", { input: ASK });
    const parts = [];
    for await (const part of client.runs.joinStream(threadId, run.run_id, { streamMode: ["messages-tuple"] })) {
      parts.push(part);
      if (parts.length === 2) await client.runs.cancel(threadId, run.run_id, true);
    }
    assert.equal(parts.at(-1).event, "error");
    assert.equal((await client.runs.get(threadId, run.run_id)).status, "interrupted");
    assert.deepEqual((await client.threads.getState(threadId)).values, {}, "a cancelled turn saves nothing");
  });

  test("a runs.stream dropped by the network is rejoined by the client with nothing lost", async (t) => {
    const proxy = await droppingProxy(apiUrl(), { afterBytes: 4000 });
    t.after(proxy.close);
    const flaky = new Client({ apiUrl: proxy.url });
    const { thread_id: threadId } = await client.threads.create();
    const parts = await collect(
      flaky.runs.stream(threadId, "agent", { input: ASK, streamMode: ["values", "messages-tuple"] }),
    );
    assert.ok(proxy.dropped(), "the proxy dropped the stream");
    const rejoins = proxy.requests.filter((line) => line.startsWith("GET ") && line.includes("/stream"));
    assert.equal(rejoins.length, 1, `the client rejoined the run's stream once: ${proxy.requests}`);
    const runId = parts[0].data.run_id;
    const whole = await follow(threadId, runId);
    const framesOf = (all) => all.filter((p) => p.event !== "metadata").map((p) => [p.event, p.data]);
    assert.deepEqual(framesOf(parts), framesOf(whole));
  });
});
