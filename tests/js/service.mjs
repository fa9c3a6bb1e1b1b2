// What the JS tests share: where the service is, the demo dialogue, a network that drops.
import net from "node:net";

export const QUESTION = "Who committed the latest malware threat?";
export const FOLLOW_UP = "What was their IP address?";

/** The Agent Protocol's base URL of the service under test (LG_API_URL). */
export function apiUrl() {
  const url = process.env.LG_API_URL;
  if (!url) {
    throw new Error(
      "LG_API_URL is not set: run these tests through pytest (tests/e2e/test_js_clients.py), " +
        "or start the service and set LG_API_URL=http://127.0.0.1:<port>/lg",
    );
  }
  return url;
}

/**
 * A TCP proxy on 127.0.0.1 to the service that drops the connection of the first event stream
 * once `afterBytes` of it have passed, as a flaky network would. `close()` stops it;
 * `requests` lists the request lines it forwarded.
 */
export async function droppingProxy(target, { afterBytes }) {
  const { hostname, port } = new URL(target);
  const requests = [];
  const sockets = new Set();
  let dropped = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    let streamed = 0;
    client.on("data", (chunk) => {
      requests.push(chunk.toString().split("\r\n")[0]);
      upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (!dropped && (streamed > 0 || chunk.toString().includes("text/event-stream"))) {
        streamed += chunk.length;
        if (streamed > afterBytes) {
          dropped = true;
          client.destroy();
          upstream.destroy();
          return;
        }
      }
      client.write(chunk);
    });
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ]) {
      from.on("end", () => to.end());
      from.on("error", () => to.destroy());
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = new URL(target);
  url.port = String(server.address().port);
  return {
    url: url.toString().replace(/\/$/, ""),
    requests,
    dropped: () => dropped,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
