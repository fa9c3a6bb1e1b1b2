// The service's HTTP API, as the page uses it: JSON requests and the SSE stream of a turn.
//
// URLs are relative to the page, so the page also works when a proxy serves the service under a
// path prefix. Requests are same-origin, so the identity the transport carries (the
// X-Forwarded-Email header under Databricks Apps) scopes every answer without any code here.

/** An error the service answered with: `{"error": {"code", "message"}}` and its status. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** The service could not be reached at all (down, restarting, or the network is gone). */
export class NetworkError extends Error {
  constructor(cause) {
    super("The service cannot be reached.");
    this.name = "NetworkError";
    this.cause = cause;
  }
}

function url(path, query = {}) {
  const target = new URL(path, document.baseURI);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null) target.searchParams.set(name, String(value));
  }
  return target;
}

async function send(method, path, { query, body, signal, headers = {} } = {}) {
  const init = { method, signal, headers: { Accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url(path, query), init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new NetworkError(error);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

async function errorFrom(response) {
  let code = "http_error";
  let message = `The service answered ${response.status}.`;
  try {
    const body = await response.json();
    code = body?.error?.code ?? code;
    message = body?.error?.message ?? message;
  } catch {
    // Not our JSON error body (a proxy's HTML page, say): keep the generic message.
  }
  const retry = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  return new ApiError(response.status, code, message, Number.isFinite(retry) ? retry : null);
}

async function json(method, path, options) {
  const response = await send(method, path, options);
  return response.status === 204 ? null : response.json();
}

const enc = encodeURIComponent;

export const api = {
  health: () => json("GET", "healthz"),
  listThreads: (before, limit, q) => json("GET", "threads", { query: { limit, before, q: q || undefined } }),
  getThread: (id) => json("GET", `threads/${enc(id)}`),
  createThread: (body) => json("POST", "threads", { body }),
  // A title from the first question and answer (written by the model when it is a real one).
  titleThread: (id) => json("POST", `threads/${enc(id)}/title`),
  renameThread: (id, title) => json("PATCH", `threads/${enc(id)}`, { body: { title } }),
  deleteThread: (id) => json("DELETE", `threads/${enc(id)}`),
  messages: (id, before, limit) => json("GET", `threads/${enc(id)}/messages`, { query: { limit, before } }),
  history: (id, before, limit) => json("GET", `threads/${enc(id)}/history`, { query: { limit, before } }),
  state: (id, checkpointId) =>
    json("GET", `threads/${enc(id)}/state`, { query: { checkpoint_id: checkpointId } }),
  feedback: (id) => json("GET", `threads/${enc(id)}/feedback`),
  // A turn as a background run: the answer (202) is the run, at once; its events follow on
  // streamRun. `strategy` says what happens when the thread is busy (the service's default: reject).
  startRun: (id, body, strategy) =>
    json("POST", `threads/${enc(id)}/messages`, {
      body: { ...body, background: true, multitask_strategy: strategy },
    }),
  getRun: (id, runId) => json("GET", `threads/${enc(id)}/runs/${enc(runId)}`),
  activeRuns: (id) => json("GET", `threads/${enc(id)}/runs`, { query: { status: "running", limit: 1 } }),
  pendingRuns: (id) => json("GET", `threads/${enc(id)}/runs`, { query: { status: "pending", limit: 1 } }),
  cancelRun: (id, runId) =>
    json("POST", `threads/${enc(id)}/runs/${enc(runId)}/cancel`, { query: { wait: "true" } }),
  giveFeedback: (id, runId, rating) =>
    json("PUT", `threads/${enc(id)}/feedback/${enc(runId)}`, { body: { rating } }),
  // Long-term memory: the caller's ["memories"] namespace of the store.
  searchMemories: (query) =>
    json("POST", "store/items/search", {
      body: { namespace_prefix: ["memories"], limit: 100, query: query || undefined },
    }),
  forgetMemory: (key) => json("DELETE", "store/items", { body: { namespace: ["memories"], key } }),
  forgetAllMemories: () => json("DELETE", "store/namespaces", { query: { prefix: "memories" } }),
};

/**
 * Follow a run's Server-Sent Events and call `onEvent(name, data, id)` for each until the
 * stream ends (after `done` or `error`). `lastEventId` resumes after that event: nothing is lost
 * or repeated. A refusal throws ApiError before the first event; a dropped connection throws
 * NetworkError (the run itself goes on in the service).
 */
export async function streamRun(threadId, runId, { lastEventId = null, onEvent, signal }) {
  const headers = { Accept: "text/event-stream" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  const response = await send("GET", `threads/${enc(threadId)}/runs/${enc(runId)}/stream`, {
    signal,
    headers,
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser(onEvent);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(value);
    }
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new NetworkError(error);
  }
  parser.end();
}

/** Incremental SSE parser (https://html.spec.whatwg.org/#event-stream-interpretation). */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.pending = "";
    this.carry = "";
  }

  push(chunk) {
    let text = this.carry + chunk;
    // A trailing CR may be the first half of a CRLF split across chunks: keep it for later.
    this.carry = text.endsWith("\r") ? "\r" : "";
    if (this.carry) text = text.slice(0, -1);
    this.pending += text.replace(/\r\n?/g, "\n");
    let end;
    while ((end = this.pending.indexOf("\n\n")) >= 0) {
      const block = this.pending.slice(0, end);
      this.pending = this.pending.slice(end + 2);
      this.dispatch(block);
    }
  }

  end() {
    this.push("\n\n");
  }

  dispatch(block) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue; // comments are keep-alive pings
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "id") this.lastEventId = value;
    }
    if (data.length === 0) return;
    this.onEvent(event, JSON.parse(data.join("\n")), this.lastEventId ?? null);
  }
}
