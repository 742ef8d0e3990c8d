// Server-sent events over fetch: the browser's EventSource cannot send the bearer header the
// console signs in with (and the console sets no cookie), so the stream is read and parsed
// here. One message per blank line: `event:`, `data:` (joined), `id:`; `retry:` and `:`
// comments are handled, per the HTML spec's event-stream format.

export interface StreamEvent {
  event: string;
  data: string;
  id: string | null;
}

/** Feeds text chunks to `emit` as whole messages; returns the parser to feed. */
export function eventParser(emit: (e: StreamEvent) => void, onRetry?: (ms: number) => void) {
  let buffer = "";
  let event = "message";
  let data: string[] = [];
  let id: string | null = null;
  const line = (text: string) => {
    if (text === "") {
      if (data.length) emit({ event, data: data.join("\n"), id });
      event = "message";
      data = [];
      return;
    }
    if (text.startsWith(":")) return; // a keep-alive
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
    else if (field === "retry" && /^\d+$/.test(value)) onRetry?.(Number(value));
  };
  return (chunk: string) => {
    buffer += chunk;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop() ?? "";
    lines.forEach(line);
  };
}

export type StreamEnd = "ended" | "closed" | "unavailable";

/** Reads `url`'s event stream until it closes: "ended" after an `end` event (or a 204, the
 * server saying there is nothing more), "closed" when it closed before (reconnect with the last
 * id), "unavailable" when the server has no stream to give (poll instead). */
export async function readStream(
  url: string,
  key: string,
  options: { lastId: string | null; signal: AbortSignal; onEvent: (e: StreamEvent) => void },
): Promise<{ end: StreamEnd; lastId: string | null; retryMs: number }> {
  let lastId = options.lastId;
  let retryMs = 1000;
  const headers: Record<string, string> = {
    Accept: "text/event-stream",
    Authorization: `Bearer ${key}`,
  };
  if (lastId) headers["Last-Event-ID"] = lastId;
  const response = await fetch(url, { headers, signal: options.signal, credentials: "omit" });
  if (response.status === 204) return { end: "ended", lastId, retryMs };
  if (!response.ok || !response.body) return { end: "unavailable", lastId, retryMs };
  let ended = false;
  const feed = eventParser(
    (e) => {
      if (e.id !== null) lastId = e.id;
      if (e.event === "end") ended = true;
      options.onEvent(e);
    },
    (ms) => (retryMs = ms),
  );
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    feed(value);
  }
  return { end: ended ? "ended" : "closed", lastId, retryMs };
}
