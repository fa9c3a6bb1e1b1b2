// useStream (@langchain/langgraph-sdk/react) in headless Chromium against the running service:
// page/chat.jsx is bundled here with esbuild, served on 127.0.0.1:PAGE_PORT (the origin the
// service allows by CORS_ORIGINS), and driven with playwright-core in Debian's chromium
// (CHROMIUM_PATH, with the flags of tests/e2e/conftest.py in CHROMIUM_ARGS). The page loads
// nothing but its own bundle and the service's API.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { Client } from "@langchain/langgraph-sdk";
import { build } from "esbuild";
import { chromium } from "playwright-core";

import { FOLLOW_UP, QUESTION, apiUrl } from "./service.mjs";

const HTML = '<!doctype html><meta charset="utf-8"><title>useStream</title><link rel="icon" href="data:,"><div id="root"></div><script src="/chat.js"></script>';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this file through tests/e2e/test_js_clients.py`);
  return value;
}

async function bundle() {
  const built = await build({
    entryPoints: [fileURLToPath(new URL("./page/chat.jsx", import.meta.url))],
    bundle: true,
    write: false,
    format: "iife",
    jsx: "automatic",
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "silent",
  });
  return built.outputFiles[0].text;
}

async function serve(script, port) {
  const server = createServer((request, response) => {
    const [type, body] =
      request.url === "/chat.js"
        ? ["text/javascript", script]
        : request.url.startsWith("/?") || request.url === "/"
          ? ["text/html", HTML]
          : [null, null];
    response.writeHead(type ? 200 : 404, type ? { "content-type": type } : {});
    response.end(body ?? "");
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  return server;
}

const client = new Client({ apiUrl: apiUrl() });
let server;
let browser;

before(async () => {
  server = await serve(await bundle(), Number(required("PAGE_PORT")));
  browser = await chromium.launch({
    executablePath: required("CHROMIUM_PATH"),
    args: required("CHROMIUM_ARGS").split(" "),
    headless: true,
  });
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
});

/** What the page shows: its messages (type, text, id) and whether it streams. */
async function shown(page) {
  return page.evaluate(() => ({
    messages: [...document.querySelectorAll("li")].map((li) => ({
      type: li.dataset.type,
      text: li.querySelector("span").textContent,
      id: li.dataset.id,
    })),
    status: document.querySelector('[role="status"]').textContent,
    error: document.querySelector('[role="alert"]')?.textContent ?? null,
  }));
}

/** Wait until the page has `turns` questions and is idle with an answer after the last one. */
async function turnDone(page, turns) {
  await waitFor(page, (n) => {
    const items = [...document.querySelectorAll("li")];
    const last = items.at(-1);
    return (
      items.filter((li) => li.dataset.type === "human").length === n &&
      last?.dataset.type === "ai" &&
      last.querySelector("span").textContent.length > 0 &&
      document.querySelector('[role="status"]').textContent === "idle"
    );
  }, turns);
}

/** page.waitForFunction, failing with what the page shows. */
async function waitFor(page, predicate, argument) {
  try {
    await page.waitForFunction(predicate, argument);
  } catch (error) {
    const { messages, ...rest } = await shown(page);
    const tail = JSON.stringify({ ...rest, messages: messages.length, last: messages.slice(-3) });
    throw new Error(`${error.message}\nthe page shows: ${tail}`, { cause: error });
  }
}

async function ask(page, text) {
  await page.getByLabel("Message").fill(text);
  await page.getByLabel("Message").press("Enter");
}

test("useStream: the demo dialogue, a reload that rejoins a running turn, edit and regenerate", async () => {
  const page = await browser.newPage();
  const problems = [];
  page.on("console", (message) => message.type() === "error" && problems.push(`console: ${message.text()}`));
  page.on("pageerror", (error) => problems.push(`pageerror: ${error.message}`));
  page.on("response", (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.request().method()} ${r.url()}`));
  const origins = new Set();
  const rejoins = [];
  page.on("request", (request) => {
    origins.add(new URL(request.url()).origin);
    if (request.method() === "GET" && /\/runs\/[^/]+\/stream/.test(request.url())) rejoins.push(request.url());
  });
  page.setDefaultTimeout(30_000);
  const origin = `http://127.0.0.1:${required("PAGE_PORT")}`;
  await page.goto(`${origin}/?api=${encodeURIComponent(apiUrl())}`);

  await ask(page, QUESTION);
  await turnDone(page, 1);
  const threadId = new URL(page.url()).searchParams.get("thread");
  assert.ok(threadId, "the page put the thread it created in its URL");
  const first = (await shown(page)).messages.at(-1).text;
  assert.match(first, /Malware/);
  await ask(page, FOLLOW_UP);
  await turnDone(page, 2);
  const ip = (await shown(page)).messages.at(-1).text.match(/\d+\.\d+\.\d+\.\d+/)?.[0];
  assert.ok(ip && first.includes(ip), "the follow-up answer names the IP of the first answer");

  // A third turn, reloaded while its answer streams: the page rejoins the run and finishes it.
  await ask(page, QUESTION);
  await waitFor(page, () => {
    const items = [...document.querySelectorAll("li")];
    return (
      items.filter((li) => li.dataset.type === "human").length === 3 &&
      items.at(-1).dataset.type === "ai" &&
      items.at(-1).querySelector("span").textContent.length > 0
    );
  });
  const runId = await page.evaluate((id) => window.sessionStorage.getItem(`lg:stream:${id}`), threadId);
  assert.ok(runId, "useStream remembered the running run");
  await page.reload();
  assert.equal((await client.runs.get(threadId, runId)).status, "running", "reloaded while the turn runs");
  await turnDone(page, 3);
  assert.ok(
    rejoins.some((url) => url.includes(`/runs/${runId}/stream`)),
    `the reloaded page rejoined the run's stream: ${rejoins}`,
  );

  const state = await client.threads.getState(threadId);
  const view = await shown(page);
  assert.deepEqual(
    view.messages.map((m) => m.id),
    state.values.messages.map((m) => m.id),
    "the page shows the thread's whole conversation, each message once",
  );
  assert.equal(view.messages.at(-1).text, state.values.messages.at(-1).content);

  // Regenerating the last answer replaces it with a new one (the offline model says it again).
  await page.getByRole("button", { name: "Regenerate" }).click();
  await waitFor(page, (oldId) => {
    const last = [...document.querySelectorAll("li")].at(-1);
    const idle = document.querySelector('[role="status"]').textContent === "idle";
    return idle && last.dataset.type === "ai" && last.dataset.id !== oldId;
  }, view.messages.at(-1).id);
  const regenerated = await shown(page);
  assert.deepEqual(
    regenerated.messages.map((m) => m.id),
    (await client.threads.getState(threadId)).values.messages.map((m) => m.id),
  );
  assert.deepEqual(
    regenerated.messages.slice(0, -1).map((m) => m.text),
    view.messages.slice(0, -1).map((m) => m.text),
  );
  assert.equal(regenerated.messages.at(-1).text, view.messages.at(-1).text);

  // Editing the second question forks the thread before it: the third turn leaves the page.
  const edited = "Who committed the latest phishing threat?";
  page.once("dialog", (dialog) => dialog.accept(edited));
  await page.getByRole("listitem").filter({ hasText: FOLLOW_UP }).getByRole("button", { name: "Edit" }).click();
  await turnDone(page, 2);
  const forked = await shown(page);
  const head = await client.threads.getState(threadId);
  assert.deepEqual(
    forked.messages.map((m) => m.id),
    head.values.messages.map((m) => m.id),
  );
  assert.deepEqual(
    forked.messages.filter((m) => m.type === "human").map((m) => m.text),
    [QUESTION, edited],
  );
  assert.match(forked.messages.at(-1).text, /Phishing/);
  assert.deepEqual([...origins].sort(), [origin, new URL(apiUrl()).origin].sort());
  assert.deepEqual(problems, []);
  await page.close();
});
