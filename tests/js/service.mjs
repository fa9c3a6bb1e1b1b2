// What the JS tests share: where the service is, and the demo dialogue.

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
