// Small DOM and formatting helpers shared by the page's modules.

const SVG = "http://www.w3.org/2000/svg";
const ICONS = {
  plus: "M12 5v14M5 12h14",
  menu: "M4 6h16M4 12h16M4 18h16",
  close: "M6 6l12 12M18 6 6 18",
  copy: "M9 9h11v11H9zM5 15H4V4h11v1",
  history: "M3 12a9 9 0 1 0 2.6-6.4L3 8M3 3v5h5M12 7v5l3 2",
  pencil: "M4 20h4L19 9l-4-4L4 16zM14 6l4 4",
  trash: "M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3",
  send: "M5 12h14M13 6l6 6-6 6",
  alert: "M12 8v5M12 16.5v.5M10.3 3.9 2.4 18a2 2 0 0 0 1.7 3h15.8a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z",
  bot: "M12 3v3M7 7h10a3 3 0 0 1 3 3v6a3 3 0 0 1-3 3H7a3 3 0 0 1-3-3v-6a3 3 0 0 1 3-3zM9 12v1M15 12v1",
  check: "M5 12l5 5L20 7",
  thumbUp: "M7 11v9H4v-9zM7 11l4-8a2 2 0 0 1 2 2v4h6a2 2 0 0 1 2 2.3l-1.3 7A2 2 0 0 1 17.7 20H7",
  refresh: "M20 11a8 8 0 1 0-2.3 5.7M20 4v7h-7",
  stop: "M7 7h10v10H7z",
  down: "M12 5v14M6 13l6 6 6-6",
  sidebar: "M4 4h16v16H4zM9 4v16",
  thumbDown: "M7 13V4H4v9zM7 13l4 8a2 2 0 0 0 2-2v-4h6a2 2 0 0 0 2-2.3l-1.3-7A2 2 0 0 0 17.7 4H7",
};

export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  for (const [k, v] of Object.entries({
    viewBox: "0 0 24 24",
    class: "icon",
    "aria-hidden": "true",
    fill: "none",
    stroke: "currentColor",
    "stroke-width": "2",
    "stroke-linecap": "round",
    "stroke-linejoin": "round",
  }))
    svg.setAttribute(k, v);
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

/** h("button", {class: "x", onclick: f, text: "Hi"}, ...children) */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function ago(iso) {
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  if (!Number.isFinite(seconds)) return "";
  if (seconds < 45) return "just now";
  for (const [unit, size] of [
    ["minute", 60],
    ["hour", 3600],
    ["day", 86400],
  ]) {
    const next = unit === "minute" ? 3600 : unit === "hour" ? 86400 : 7 * 86400;
    if (seconds < next) return relative.format(-Math.round(seconds / size), unit);
  }
  return new Date(iso).toLocaleDateString(undefined, { month: "short", day: "numeric", year: "numeric" });
}

export const fullTime = (iso) => (iso ? new Date(iso).toLocaleString() : "");
export const shortTime = (iso) =>
  iso
    ? new Date(iso).toLocaleString(undefined, {
        month: "short",
        day: "numeric",
        hour: "2-digit",
        minute: "2-digit",
        second: "2-digit",
      })
    : "time unknown";

export const titleOf = (thread) => thread?.title || "Untitled thread";
export const plural = (n, word, many = `${word}s`) => `${n} ${n === 1 ? word : many}`;

// Openers that say nothing about the subject: "Hi! Can you please tell me who ..." is titled "Who ...".
const FILLER =
  /^(?:(?:hi|hello|hey|ok(?:ay)?|so|please|thanks?|thank you)\b[\s,!.]*|(?:can|could|would|will) you(?: please)?(?: tell me| show me| help me(?: find)?)?\b[\s,]*|(?:tell|show) me\b[\s,]*|i (?:want|need|would like) to know\b[\s,]*)/i;
const TITLE_MAX = 48;

/**
 * A short title from a thread's first question (offline, no model): its first sentence without
 * greetings and "can you tell me", capitalised, cut at a word boundary.
 */
export function titleFrom(text) {
  let line = text.replace(/\s+/g, " ").trim();
  for (let before = ""; before !== line; ) {
    before = line;
    line = line.replace(FILLER, "");
  }
  line = (line.match(/^.+?[.?!](?=\s|$)/)?.[0] ?? line).replace(/[.!]$/, "");
  if (!line) line = text.replace(/\s+/g, " ").trim();
  line = line.charAt(0).toUpperCase() + line.slice(1);
  if (line.length <= TITLE_MAX) return line;
  const cut = line.slice(0, TITLE_MAX - 1);
  return `${cut.slice(0, cut.lastIndexOf(" ") > 20 ? cut.lastIndexOf(" ") : cut.length).trimEnd()}…`;
}
