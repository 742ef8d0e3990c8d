import { describe, expect, it } from "vitest";
import { layoutGraph, nodeHeight } from "./layout";

describe("layoutGraph", () => {
  it("places a chain left to right and parallel branches apart", () => {
    const positions = layoutGraph(
      [
        { id: "a", ports: 1 },
        { id: "b", ports: 3 },
        { id: "c", ports: 1 },
        { id: "d", ports: 2 },
      ],
      [
        { source: "a", target: "b" },
        { source: "a", target: "c" },
        { source: "b", target: "d" },
        { source: "c", target: "d" },
        { source: "a", target: "nowhere" },
      ],
    );
    const p = (id: string) => positions.get(id)!;
    expect(p("a").x).toBeLessThan(p("b").x);
    expect(p("b").x).toBeLessThan(p("d").x);
    expect(p("b").x).toEqual(p("c").x);
    expect(p("b").y).not.toEqual(p("c").y);
    expect(p("b").height).toEqual(nodeHeight(3));
  });

  it("lays out 200 nodes without overlap in a rank", () => {
    const nodes = Array.from({ length: 200 }, (_, i) => ({ id: `n${i}`, ports: 2 }));
    const edges = nodes.slice(1).map((n, i) => ({ source: `n${Math.floor(i / 3)}`, target: n.id }));
    const positions = layoutGraph(nodes, edges);
    expect(positions.size).toBe(200);
    const byX = new Map<number, number[]>();
    for (const p of positions.values()) byX.set(p.x, [...(byX.get(p.x) ?? []), p.y]);
    for (const ys of byX.values()) {
      ys.sort((u, v) => u - v);
      for (let i = 1; i < ys.length; i++) expect(ys[i] - ys[i - 1]).toBeGreaterThanOrEqual(nodeHeight(2));
    }
  });
});
