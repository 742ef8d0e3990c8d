// The graph the API answers (GET /v1/workflows/{name}/versions/{version}/graph) and the keys the
// console gives its edges.
import type { Schemas } from "../api/client";

export type GraphData = Schemas["GraphPublic"];
export type GraphNode = Schemas["GraphNode"];
export type GraphEdge = Schemas["GraphEdge"];

/** One edge per (source output, target input): the same key in both versions of a diff. */
export function edgeKey(edge: GraphEdge): string {
  return `${edge.source}.${edge.output}->${edge.target}.${edge.input ?? "when"}`;
}

export function portCount(node: GraphNode): number {
  return Math.max(Object.keys(node.inputs).length, Object.keys(node.outputs).length);
}
