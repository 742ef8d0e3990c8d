// A workflow graph drawn with React Flow: one node card per step (id, kind, model, a handle per
// typed input and output), edges labelled with the type they carry. In a diff each node and
// edge carries its change as text and a symbol as well as a colour.
import {
  Background,
  Controls,
  type Edge,
  Handle,
  type Node,
  type NodeProps,
  Position as Side,
  ReactFlow,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { memo, useEffect, useMemo } from "react";
import { CHANGE_TEXT, type Change, type FieldChangeLike } from "../graph/diffGraph";
import { NODE_WIDTH, type Position } from "../graph/layout";
import { edgeKey, type GraphEdge, type GraphNode } from "../graph/model";
import { STATE_TEXT, type StepStateName } from "../lib/runs";

export interface DrawnNode {
  node: GraphNode;
  change?: Change;
  fields?: FieldChangeLike[];
  /** Drawn as an outline saying "not in this version": keeps both sides of a diff on the same
   *  positions and the same zoom. */
  ghost?: boolean;
  /** In a run: where this step is, and a line of figures (cost, time, attempts). */
  state?: StepStateName;
  note?: string;
}
export interface DrawnEdge {
  edge: GraphEdge;
  change?: Exclude<Change, "changed">;
}

type StepData = {
  node: GraphNode;
  change?: Change;
  fields: FieldChangeLike[];
  ghost: boolean;
  state?: StepStateName;
  note?: string;
};
type StepNode = Node<StepData, "step">;

function StepCard({ data }: NodeProps<StepNode>) {
  const { node, change, fields, ghost, state, note } = data;
  if (ghost) {
    return (
      <div className="step ghost" data-node={node.id} data-ghost="true">
        <strong>{node.id}</strong>
        <div className="step-kind">not in this version</div>
      </div>
    );
  }
  const inputs = Object.entries(node.inputs).filter(([name]) => name !== "model");
  const outputs = Object.entries(node.outputs);
  const mark = change && change !== "unchanged" ? CHANGE_TEXT[change] : null;
  const where = state ? STATE_TEXT[state] : null;
  const title = fields.length
    ? fields.map((f) => `${f.path}: ${f.change}`).join("\n")
    : undefined;
  return (
    <div
      className={`step ${change ? `change-${change}` : ""} ${state ? `state-${state}` : ""}`}
      data-node={node.id}
      data-change={change ?? ""}
      data-state={state ?? ""}
      title={title}
    >
      <div className="step-head">
        <strong>{node.id}</strong>
        {mark && (
          <span className="badge" aria-label={`node ${mark.word}`}>
            {mark.symbol} {mark.word}
          </span>
        )}
        {where && (
          <span className="badge state" aria-label={`step ${where.word}`}>
            {where.symbol} {where.word}
          </span>
        )}
      </div>
      {note && <div className="step-note">{note}</div>}
      <div className="step-kind">
        {node.kind}
        {node.conditional ? " · when" : ""}
        {node.on_failure !== "fail" ? ` · on failure: ${node.on_failure}` : ""}
      </div>
      {node.model && <div className="step-model">{node.model}</div>}
      <div className="ports">
        <ul aria-label="inputs">
          {inputs.map(([name, type]) => (
            <li key={name}>
              <Handle type="target" position={Side.Left} id={`in-${name}`} />
              {name}: <em>{type}</em>
            </li>
          ))}
          {node.conditional && (
            <li>
              <Handle type="target" position={Side.Left} id="in-when" />
              when
            </li>
          )}
        </ul>
        <ul aria-label="outputs" className="outputs">
          {outputs.map(([name, type]) => (
            <li key={name}>
              {name}: <em>{type}</em>
              <Handle type="source" position={Side.Right} id={`out-${name}`} />
            </li>
          ))}
        </ul>
      </div>
    </div>
  );
}

// Memoised, as React Flow advises: a pan or zoom re-renders no card whose data is unchanged.
const nodeTypes = { step: memo(StepCard) };

export function GraphView(props: {
  nodes: DrawnNode[];
  edges: DrawnEdge[];
  positions: Map<string, Position>;
  label: string;
  /** Called with performance.now() once the browser has painted this graph. */
  onDrawn?: (at: number) => void;
}) {
  const nodes = useMemo<StepNode[]>(
    () =>
      props.nodes.map(({ node, change, fields, ghost, state, note }) => {
        const at = props.positions.get(node.id) ?? { x: 0, y: 0, width: NODE_WIDTH, height: 80 };
        return {
          id: node.id,
          type: "step",
          position: { x: at.x, y: at.y },
          data: { node, change, fields: fields ?? [], ghost: ghost ?? false, state, note },
          draggable: false,
          connectable: false,
          ariaLabel: ghost
            ? `${node.id}, not in this version`
            : `${node.id}, ${node.kind}${node.model ? `, ${node.model}` : ""}${
                change && change !== "unchanged" ? `, ${change}` : ""
              }${state ? `, ${STATE_TEXT[state].word}` : ""}`,
          // A ghost keeps the height of the node it stands for, so both sides fit alike.
          style: ghost ? { width: NODE_WIDTH, height: at.height } : { width: NODE_WIDTH },
        };
      }),
    [props.nodes, props.positions],
  );
  const edges = useMemo<Edge[]>(
    () =>
      props.edges.map(({ edge, change }) => {
        const mark = change && change !== "unchanged" ? ` (${CHANGE_TEXT[change].symbol})` : "";
        return {
          id: edgeKey(edge),
          source: edge.source,
          target: edge.target,
          sourceHandle: `out-${edge.output}`,
          targetHandle: `in-${edge.input ?? "when"}`,
          label: `${edge.type}${mark}`,
          className: change ? `change-${change}` : undefined,
          ariaLabel: `${edge.source}.${edge.output} to ${edge.target}.${edge.input ?? "when"}, ${
            edge.type
          }${change && change !== "unchanged" ? `, ${change}` : ""}`,
        };
      }),
    [props.edges],
  );
  const { onDrawn } = props;
  useEffect(() => {
    // After the browser has painted the nodes: what "laid out and drawn" means to a user.
    const frame = requestAnimationFrame(() =>
      requestAnimationFrame(() => onDrawn?.(performance.now())),
    );
    return () => cancelAnimationFrame(frame);
  }, [nodes, edges, onDrawn]);
  return (
    <div className="graph" role="group" aria-label={props.label}>
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        fitView
        minZoom={0.05}
        nodesDraggable={false}
        nodesConnectable={false}
        proOptions={{ hideAttribution: true }}
      >
        <Background />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}
