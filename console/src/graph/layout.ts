// Left-to-right layout of a workflow graph with dagre. Pure: positions only, no React, so the
// diff view can lay out the union of two versions once and draw both on the same positions.
import dagre from "@dagrejs/dagre";

export interface LayoutNode {
  id: string;
  ports: number; // the larger of its input and output counts: sets the node's height
}
export interface LayoutEdge {
  source: string;
  target: string;
}
export interface Position {
  x: number;
  y: number;
  width: number;
  height: number;
}

export const NODE_WIDTH = 220;
const HEADER = 58;
const PORT = 18;

export function nodeHeight(ports: number): number {
  return HEADER + Math.max(1, ports) * PORT;
}

/** Top-left positions by node id; edges to unknown nodes are ignored. */
export function layoutGraph(nodes: LayoutNode[], edges: LayoutEdge[]): Map<string, Position> {
  const g = new dagre.graphlib.Graph({ multigraph: false });
  g.setGraph({ rankdir: "LR", nodesep: 30, ranksep: 90, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of nodes) {
    g.setNode(node.id, { width: NODE_WIDTH, height: nodeHeight(node.ports) });
  }
  const ids = new Set(nodes.map((n) => n.id));
  for (const edge of edges) {
    if (ids.has(edge.source) && ids.has(edge.target)) g.setEdge(edge.source, edge.target);
  }
  dagre.layout(g);
  const positions = new Map<string, Position>();
  for (const node of nodes) {
    const laid = g.node(node.id);
    // dagre answers centres; React Flow places by the top-left corner.
    positions.set(node.id, {
      x: laid.x - laid.width / 2,
      y: laid.y - laid.height / 2,
      width: laid.width,
      height: laid.height,
    });
  }
  return positions;
}
