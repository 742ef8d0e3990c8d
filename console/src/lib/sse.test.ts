import { describe, expect, it } from "vitest";
import { eventParser, type StreamEvent } from "./sse";

describe("the event-stream parser", () => {
  it("emits whole messages across chunks, with their event, data and id", () => {
    const got: StreamEvent[] = [];
    let retry = 0;
    const feed = eventParser((e) => got.push(e), (ms) => (retry = ms));
    feed("retry: 1000\n\n: keep-alive\n\nid: 2.0300\nevent: st");
    feed('ep\ndata: {"node":"a"}\n\nid: 2.4333\r\nevent: end\r\ndata: {"status":');
    expect(got).toEqual([{ event: "step", data: '{"node":"a"}', id: "2.0300" }]);
    feed('"succeeded"}\r\n\r\n');
    expect(got[1]).toEqual({ event: "end", data: '{"status":"succeeded"}', id: "2.4333" });
    expect(retry).toBe(1000);
  });
  it("joins data lines and defaults the event to message", () => {
    const got: StreamEvent[] = [];
    const feed = eventParser((e) => got.push(e));
    feed("data: one\ndata:two\n\n");
    expect(got).toEqual([{ event: "message", data: "one\ntwo", id: null }]);
  });
});
