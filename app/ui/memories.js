// The memory panel: what the agent remembers about the caller across threads (the long-term
// store's ["memories"] namespace), with search, forget one and forget everything.
//
// The service scopes every store request to the caller's identity, so this lists only the
// caller's own memories; no owner is ever sent from here.

import { ApiError, api } from "./api.js";
import { ago, h, icon, plural } from "./dom.js";

const $ = (id) => document.getElementById(id);

export function initMemoryPanel() {
  const ui = {
    button: $("memory-btn"),
    panel: $("memory-panel"),
    close: $("close-memory"),
    form: $("memory-search"),
    query: $("memory-query"),
    list: $("memory-list"),
    status: $("memory-status"),
    forgetAll: $("forget-all"),
  };

  function say(text) {
    ui.status.textContent = text;
  }

  function row(item) {
    const text = item.value?.content ?? JSON.stringify(item.value);
    return h(
      "li",
      { class: "memory" },
      h("p", { class: "memory-text", text }),
      h(
        "div",
        { class: "memory-meta" },
        h("span", { text: ago(item.updated_at), title: new Date(item.updated_at).toLocaleString() }),
        h(
          "button",
          {
            class: "icon-btn small danger",
            type: "button",
            "aria-label": `Forget: ${text}`,
            title: "Forget this memory",
            onclick: () => forget(item.key),
          },
          icon("trash"),
        ),
      ),
    );
  }

  async function refresh() {
    const query = ui.query.value.trim();
    try {
      const { items } = await api.searchMemories(query);
      ui.list.replaceChildren(...items.map(row));
      ui.forgetAll.disabled = items.length === 0 && !query;
      say(items.length ? plural(items.length, "memory", "memories") : query ? "Nothing matches." : "No memories yet.");
    } catch (error) {
      ui.list.replaceChildren();
      ui.forgetAll.disabled = true;
      say(error instanceof ApiError ? error.message : "The service cannot be reached.");
    }
  }

  async function forget(key) {
    try {
      await api.forgetMemory(key);
    } catch (error) {
      say(error.message);
      return;
    }
    await refresh();
  }

  async function forgetAll() {
    if (!window.confirm("Forget everything the agent remembers about you? This cannot be undone.")) return;
    try {
      const { deleted } = await api.forgetAllMemories();
      ui.query.value = "";
      await refresh();
      say(`Forgot ${plural(deleted, "memory", "memories")}.`);
    } catch (error) {
      say(error.message);
    }
  }

  function open() {
    ui.panel.hidden = false;
    ui.button.setAttribute("aria-expanded", "true");
    ui.query.focus();
    refresh();
  }

  function close() {
    ui.panel.hidden = true;
    ui.button.setAttribute("aria-expanded", "false");
    ui.button.focus();
  }

  ui.button.addEventListener("click", () => (ui.panel.hidden ? open() : close()));
  ui.close.addEventListener("click", close);
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  ui.forgetAll.addEventListener("click", forgetAll);
  // A turn may have saved or forgotten a memory: show the panel as it is now.
  return { refreshIfOpen: () => ui.panel.hidden || refresh(), closeIfOpen: () => !ui.panel.hidden && (close(), true) };
}
