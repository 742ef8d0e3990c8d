// Two versions as one graph: the union of their nodes and edges, each marked added (only in
// the newer), removed (only in the older), changed (in both, a field differs) or unchanged, laid
// out once so both sides of the diff put every node in the same place.
import { layoutGraph, type Position } from "./layout";
import { edgeKey, type GraphData, type GraphEdge, type GraphNode, portCount } from "./model";

export type Change = "added" | "removed" | "changed" | "unchanged";

export interface FieldChangeLike {
  path: string;
  change: string;
  before?: unknown;
  after?: unknown;
}

export interface UnionNode {
  id: string;
  change: Change;
  a?: GraphNode;
  b?: GraphNode;
  fields: FieldChangeLike[];
}
export interface UnionEdge {
  key: string;
  change: Exclude<Change, "changed">;
  edge: GraphEdge;
}
export interface UnionGraph {
  nodes: UnionNode[];
  edges: UnionEdge[];
  positions: Map<string, Position>;
}

/** What a change reads as, in words and a symbol: colour is never the only carrier. */
export const CHANGE_TEXT: Record<Change, { symbol: string; word: string }> = {
  added: { symbol: "+", word: "added" },
  removed: { symbol: "−", word: "removed" },
  changed: { symbol: "~", word: "changed" },
  unchanged: { symbol: "", word: "unchanged" },
};

function sameNode(a: GraphNode, b: GraphNode): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** `changed` names the nodes the server's diff found changed (with their fields); a node whose
 *  drawn data differs but the server did not list is still marked changed. */
export function unionGraph(
  a: GraphData,
  b: GraphData,
  changed: Record<string, FieldChangeLike[]> = {},
): UnionGraph {
  const byIdA = new Map(a.nodes.map((n) => [n.id, n]));
  const byIdB = new Map(b.nodes.map((n) => [n.id, n]));
  const nodes: UnionNode[] = [];
  // Newer order first, then what only the older had, so removed nodes keep a stable place.
  for (const nb of b.nodes) {
    const na = byIdA.get(nb.id);
    const fields = changed[nb.id] ?? [];
    const change: Change = !na
      ? "added"
      : fields.length || !sameNode(na, nb)
        ? "changed"
        : "unchanged";
    nodes.push({ id: nb.id, change, a: na, b: nb, fields });
  }
  for (const na of a.nodes) {
    if (!byIdB.has(na.id)) nodes.push({ id: na.id, change: "removed", a: na, fields: [] });
  }
  const keysA = new Map(a.edges.map((e) => [edgeKey(e), e]));
  const keysB = new Map(b.edges.map((e) => [edgeKey(e), e]));
  const edges: UnionEdge[] = [];
  for (const [key, edge] of keysB) {
    edges.push({ key, edge, change: keysA.has(key) ? "unchanged" : "added" });
  }
  for (const [key, edge] of keysA) {
    if (!keysB.has(key)) edges.push({ key, edge, change: "removed" });
  }
  const positions = layoutGraph(
    nodes.map((n) => ({ id: n.id, ports: portCount((n.b ?? n.a) as GraphNode) })),
    edges.map((e) => e.edge),
  );
  return { nodes, edges, positions };
}

/** The nodes and edges one side of the diff draws: the older side has no added ones, the newer
 *  side no removed ones. */
export function side(union: UnionGraph, which: "a" | "b"): UnionGraph {
  const hidden: Change = which === "a" ? "added" : "removed";
  return {
    nodes: union.nodes.filter((n) => n.change !== hidden),
    edges: union.edges.filter((e) => e.change !== hidden),
    positions: union.positions,
  };
}
