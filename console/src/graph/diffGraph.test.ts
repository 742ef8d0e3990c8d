import { describe, expect, it } from "vitest";
import { side, unionGraph } from "./diffGraph";
import type { GraphData, GraphNode } from "./model";

function node(id: string, model = "sim/m"): GraphNode {
  return {
    id,
    kind: "prompt.enhance",
    model,
    inputs: { prompt: "text" },
    outputs: { text: "text" },
    conditional: false,
    on_failure: "fail",
  };
}
function graph(version: string, nodes: GraphNode[], edges: [string, string][]): GraphData {
  return {
    workflow: "w",
    version,
    digest: version,
    nodes,
    edges: edges.map(([s, t]) => ({
      source: s,
      output: "text",
      target: t,
      input: "prompt",
      type: "text",
    })),
  };
}

const a = graph("v1", [node("enhance"), node("video"), node("old")], [
  ["enhance", "video"],
  ["enhance", "old"],
]);
const b = graph("v2", [node("enhance", "sim/large"), node("video"), node("safety")], [
  ["enhance", "video"],
  ["enhance", "safety"],
]);

describe("unionGraph", () => {
  const union = unionGraph(a, b, { enhance: [{ path: "with.model", change: "changed" }] });
  const change = Object.fromEntries(union.nodes.map((n) => [n.id, n.change]));

  it("marks each node added, removed, changed or unchanged", () => {
    expect(change).toEqual({
      enhance: "changed",
      video: "unchanged",
      safety: "added",
      old: "removed",
    });
  });

  it("marks a node changed when its drawn data differs even if the server listed nothing", () => {
    const quiet = unionGraph(a, b, {});
    expect(quiet.nodes.find((n) => n.id === "enhance")?.change).toBe("changed");
  });

  it("marks edges by their source output and target input", () => {
    const edges = Object.fromEntries(union.edges.map((e) => [e.key, e.change]));
    expect(edges).toEqual({
      "enhance.text->video.prompt": "unchanged",
      "enhance.text->safety.prompt": "added",
      "enhance.text->old.prompt": "removed",
    });
  });

  it("lays out the union once: every node has one position, sources left of targets", () => {
    expect([...union.positions.keys()].sort()).toEqual(["enhance", "old", "safety", "video"]);
    const x = (id: string) => union.positions.get(id)!.x;
    expect(x("enhance")).toBeLessThan(x("video"));
    expect(x("enhance")).toBeLessThan(x("safety"));
    expect(x("enhance")).toBeLessThan(x("old"));
  });

  it("draws each side without the other's exclusive nodes, on the shared positions", () => {
    const left = side(union, "a");
    const right = side(union, "b");
    expect(left.nodes.map((n) => n.id).sort()).toEqual(["enhance", "old", "video"]);
    expect(right.nodes.map((n) => n.id).sort()).toEqual(["enhance", "safety", "video"]);
    expect(left.positions.get("video")).toEqual(right.positions.get("video"));
  });
});
