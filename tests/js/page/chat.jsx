// A minimal chat page on useStream, the way LangGraph's React apps use it: the thread id in the
// URL, runs rejoined after a reload (reconnectOnMount), the conversation and its branches from
// the thread's history, a question edited and an answer regenerated as agent-chat-ui does.
import { useStream } from "@langchain/langgraph-sdk/react";
import { useState } from "react";
import { createRoot } from "react-dom/client";

const params = new URLSearchParams(window.location.search);

function textOf(content) {
  return typeof content === "string" ? content : content.map((block) => block.text ?? "").join("");
}

function rememberThread(threadId) {
  const url = new URL(window.location.href);
  url.searchParams.set("thread", threadId);
  window.history.replaceState(null, "", url);
}

function Chat() {
  const [threadId, setThreadId] = useState(params.get("thread"));
  const stream = useStream({
    apiUrl: params.get("api"),
    assistantId: "agent",
    threadId,
    onThreadId: (id) => {
      rememberThread(id);
      setThreadId(id);
    },
    reconnectOnMount: true,
    fetchStateHistory: true,
  });
  // Editing a question forks the thread at the checkpoint before it, as agent-chat-ui does.
  const edit = (message) => {
    const text = window.prompt("Edit the question", textOf(message.content));
    if (!text) return;
    const parent = stream.getMessagesMetadata(message)?.firstSeenState?.parent_checkpoint;
    stream.submit({ messages: [{ type: "human", content: text }] }, { checkpoint: parent });
  };
  // Regenerating an answer re-runs, with no input, from the parent of the state it appeared in.
  const regenerate = (message) => {
    const parent = stream.getMessagesMetadata(message)?.firstSeenState?.parent_checkpoint;
    stream.submit(undefined, { checkpoint: parent });
  };
  const send = (event) => {
    event.preventDefault();
    const box = event.currentTarget.elements.message;
    stream.submit({ messages: [{ type: "human", content: box.value }] });
    box.value = "";
  };
  return (
    <main>
      <ol aria-label="Conversation">
        {stream.messages.map((message) => (
          <li key={message.id} data-id={message.id} data-type={message.type}>
            <span>{textOf(message.content)}</span>
            {message.type === "human" ? (
              <button type="button" onClick={() => edit(message)}>
                Edit
              </button>
            ) : null}
            {message.type === "ai" && message === stream.messages.at(-1) ? (
              <button type="button" onClick={() => regenerate(message)}>
                Regenerate
              </button>
            ) : null}
          </li>
        ))}
      </ol>
      <p role="status">{stream.isLoading ? "streaming" : "idle"}</p>
      {stream.error ? <p role="alert">{String(stream.error)}</p> : null}
      <form onSubmit={send}>
        <input name="message" aria-label="Message" autoComplete="off" />
        <button type="submit">Send</button>
      </form>
    </main>
  );
}

createRoot(document.getElementById("root")).render(<Chat />);
