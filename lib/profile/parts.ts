/**
 * Model parts, and which part each node of a fora-built ONNX graph belongs to.
 *
 * fora's graph builder names every node after the module it implements
 * ("blocks.3/attn/MatMul_12", "t_embedder/Gemm_4", "decoder/up_blocks.1/..."): the scope
 * gives the part. Inside a block the scope alone cannot separate everything the profile
 * reports, so the graph's topology decides:
 *
 * - attn / mlp: nodes of the `attn` (`mlp`) scope downstream of its first linear (the
 *   Q/K/V projections; fc1), i.e. the attention (MLP) proper;
 * - norm: the rest of those scopes: the LayerNorm and its modulate `x (1 + scale) + shift`;
 * - adaln: block-level nodes that lead to the Split of the adaLN Linear (SiLU, Linear, Split);
 * - residual: the other block-level nodes, the gated residuals `x + gate * y`;
 * - cache: the literal path's cached-feature reads (the `then` branch of a block's If).
 *
 * Unscoped glue (the CFG batch doubling, null labels, c = t_emb + y_emb, the reuse step's
 * x_0 + R_j) takes the part of its producers, or of its consumers when it has none.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { type GraphProto, ModelProtoSchema, type NodeProto } from "onnx-buf";
import { ForaError } from "../errors.ts";

/** Parts outside the blocks; `block` is the transformer blocks themselves. */
export const PART_NAMES = [
  "x_embedder",
  "t_embedder",
  "y_embedder",
  "conditioning",
  "block",
  "final_layer",
  "guidance",
  "residuals",
  "cache",
  "text_encoder",
  "vae",
  "other",
] as const;
export type PartName = typeof PART_NAMES[number];

/** Branches of a block, in the order they run. */
export const BLOCK_BRANCHES = ["adaln", "norm", "attn", "residual", "mlp", "cache"] as const;
export type BlockBranch = typeof BLOCK_BRANCHES[number];

export interface PartKey {
  part: PartName;
  /** Block index for part "block"; null otherwise. */
  block: number | null;
  /** For "block": a BlockBranch; for "vae": the decoder stage ("mid_block", "up_blocks.1", ...); else null. */
  branch: string | null;
}

export function partLabel(k: PartKey): string {
  if (k.part === "block") return `blocks.${k.block}.${k.branch}`;
  return k.branch ? `${k.part}.${k.branch}` : k.part;
}

const TOP_SCOPES: Record<string, PartName> = {
  x_embedder: "x_embedder",
  t_embedder: "t_embedder",
  y_embedder: "y_embedder",
  final_layer: "final_layer",
  guidance: "guidance",
  residuals: "residuals",
  text_encoder: "text_encoder",
  t5: "text_encoder",
  decoder: "vae",
  post_quant_conv: "vae",
  scale_latent: "vae",
};

/** Graph inputs whose consumers are cache plumbing. */
const CACHE_INPUTS = new Set(["residual", "cached_attn", "cached_mlp", "reuse"]);
const LINEAR_OPS = new Set(["MatMul", "Gemm", "FusedMatMul", "DynamicQuantizeMatMul", "MultiHeadAttention", "Attention"]);
const EMBEDDERS = new Set<PartName>(["x_embedder", "t_embedder", "y_embedder", "conditioning"]);

interface FlatNode {
  name: string;
  opType: string;
  inputs: string[];
  outputs: string[];
  /** Scope segments, "then"/"else" removed. */
  scope: string[];
  inThen: boolean;
}

/** Reads a .onnx file (weights stay in their external files) and maps every node name to its part. */
export async function graphParts(path: string): Promise<Map<string, PartKey>> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new ForaError("io", `${path}: cannot read the graph (${(e as Error).message})`);
  }
  let graph: GraphProto | undefined;
  try {
    graph = fromBinary(ModelProtoSchema, bytes).graph;
  } catch (e) {
    throw new ForaError("bundle", `${path}: not a readable ONNX model (${(e as Error).message})`);
  }
  if (!graph) throw new ForaError("bundle", `${path}: the ONNX model has no graph`);
  return classifyNodes(flatten(graph), new Set(graph.input.map((i) => i.name)));
}

function flatten(graph: GraphProto): FlatNode[] {
  const out: FlatNode[] = [];
  const visit = (g: GraphProto) => {
    for (const n of g.node) {
      out.push(flatNode(n));
      for (const a of n.attribute) {
        if (a.g) visit(a.g);
        for (const sub of a.graphs) visit(sub);
      }
    }
  };
  visit(graph);
  return out;
}

function flatNode(n: NodeProto): FlatNode {
  const segments = n.name.split("/").slice(0, -1);
  return {
    name: n.name,
    opType: n.opType,
    inputs: n.input.filter((i) => i !== ""),
    outputs: n.output,
    scope: segments.filter((s) => s !== "then" && s !== "else"),
    inThen: segments.includes("then"),
  };
}

function classifyNodes(nodes: FlatNode[], graphInputs: Set<string>): Map<string, PartKey> {
  const producer = new Map<string, FlatNode>();
  const consumers = new Map<string, FlatNode[]>();
  for (const n of nodes) {
    for (const o of n.outputs) producer.set(o, n);
    for (const i of n.inputs) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  }
  const parents = (n: FlatNode) => n.inputs.map((i) => producer.get(i)).filter((p): p is FlatNode => p !== undefined);
  const children = (n: FlatNode) => n.outputs.flatMap((o) => consumers.get(o) ?? []);
  const sameScope = (a: FlatNode, b: FlatNode) => a.scope.join("/") === b.scope.join("/");

  // Within one attn/mlp scope: everything downstream of a linear is the branch proper.
  const core = new Set<FlatNode>();
  const seeds = nodes.filter((n) => isBranchScope(n.scope) && LINEAR_OPS.has(n.opType));
  const stack = [...seeds];
  while (stack.length) {
    const n = stack.pop()!;
    if (core.has(n)) continue;
    core.add(n);
    for (const c of children(n)) if (sameScope(c, n) && !core.has(c)) stack.push(c);
  }
  // Constants (weight transposes and casts, folded by ONNX Runtime at load time) belong with
  // the linear they feed.
  const constant = new Set<FlatNode>();
  for (let grew = true; grew;) {
    grew = false;
    for (const n of nodes) {
      if (constant.has(n)) continue;
      if (n.inputs.every((i) => !graphInputs.has(i) && (!producer.has(i) || constant.has(producer.get(i)!)))) {
        constant.add(n);
        grew = true;
      }
    }
  }
  for (const n of constant) if (isBranchScope(n.scope) && children(n).some((c) => core.has(c))) core.add(n);
  // At block level: everything upstream of the adaLN Split is the adaLN.
  const adaln = new Set<FlatNode>();
  const up = nodes.filter((n) => n.scope.length === 1 && blockIndex(n.scope[0]) !== null && n.opType === "Split");
  while (up.length) {
    const n = up.pop()!;
    if (adaln.has(n)) continue;
    adaln.add(n);
    for (const p of parents(n)) if (sameScope(p, n) && !adaln.has(p)) up.push(p);
  }

  const parts = new Map<string, PartKey>();
  const unscoped: FlatNode[] = [];
  for (const n of nodes) {
    const k = scopedPart(n, core, adaln, readsCacheInput(n, graphInputs));
    if (k) parts.set(n.name, k);
    else unscoped.push(n);
  }
  // Glue: from producers (all one part), else consumers; repeated until nothing changes.
  let changed = true;
  while (changed) {
    changed = false;
    for (const n of unscoped) {
      if (parts.has(n.name)) continue;
      const k = readsCacheInput(n, graphInputs) ? CACHE : glue(n);
      if (k) {
        parts.set(n.name, k);
        changed = true;
      }
    }
  }
  for (const n of unscoped) if (!parts.has(n.name)) parts.set(n.name, { part: "other", block: null, branch: null });
  return parts;

  function glue(n: FlatNode): PartKey | null {
    const from = parents(n);
    if (from.length > 0) {
      const known = from.map((p) => parts.get(p.name));
      if (known.some((k) => k === undefined)) return fromConsumers(n);
      const ks = known as PartKey[];
      return common(ks) ?? (ks.some((k) => k.part === "cache") ? CACHE : null) ?? fromConsumers(n) ?? mixed(ks);
    }
    return fromConsumers(n);
  }
  function fromConsumers(n: FlatNode): PartKey | null {
    const to = children(n).map((c) => parts.get(c.name));
    if (to.length === 0 || to.some((k) => k === undefined)) return null;
    return common(to as PartKey[]);
  }
}

const CACHE: PartKey = { part: "cache", block: null, branch: null };

function readsCacheInput(n: FlatNode, graphInputs: Set<string>): boolean {
  return n.inputs.some((i) => graphInputs.has(i) && CACHE_INPUTS.has(i));
}

/** One part shared by all; for blocks the branch may differ (then the block's residual). */
function common(keys: PartKey[]): PartKey | null {
  const [first] = keys;
  if (keys.every((k) => k.part === first.part && k.block === first.block && k.branch === first.branch)) return first;
  return null;
}

/** Embedders meeting (c = t_emb + y_emb) are the conditioning; anything else is "other". */
function mixed(keys: PartKey[]): PartKey {
  if (keys.every((k) => EMBEDDERS.has(k.part))) return { part: "conditioning", block: null, branch: null };
  return { part: "other", block: null, branch: null };
}

function scopedPart(n: FlatNode, core: Set<FlatNode>, adaln: Set<FlatNode>, readsCache: boolean): PartKey | null {
  if (n.scope.length === 0) return null;
  const top = n.scope[0];
  const b = blockIndex(top);
  if (b !== null) {
    if (n.inThen || readsCache) return { part: "block", block: b, branch: "cache" };
    const sub = n.scope[1];
    if (sub === "attn" || sub === "mlp") return { part: "block", block: b, branch: core.has(n) ? sub : "norm" };
    return { part: "block", block: b, branch: adaln.has(n) ? "adaln" : "residual" };
  }
  const part = TOP_SCOPES[top];
  if (!part) return { part: "other", block: null, branch: null };
  if (part === "vae") return { part, block: null, branch: top === "decoder" ? (n.scope[1] ?? "decoder") : top };
  return { part, block: null, branch: null };
}

function isBranchScope(scope: string[]): boolean {
  return scope.length >= 2 && blockIndex(scope[0]) !== null && (scope[1] === "attn" || scope[1] === "mlp");
}

function blockIndex(segment: string): number | null {
  const m = /^blocks\.(\d+)$/.exec(segment);
  return m ? Number(m[1]) : null;
}

/**
 * The node of `parts` a profiler kernel name refers to. ONNX Runtime keeps the original
 * name for most kernels and extends it for fused ones ("blocks.0/attn/MatMul_64/
 * MatMulScaleFusion/", "x_embedder/Conv_7:0_nchwc"): the longest known prefix wins.
 * Undefined for nodes ONNX Runtime inserted itself (layout reorders, squeezes).
 */
export function lookupNode(parts: Map<string, PartKey>, kernelName: string): PartKey | undefined {
  const name = kernelName.replace(/_kernel_time$/, "");
  if (parts.has(name)) return parts.get(name);
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] === "/" || name[i] === ":") {
      const k = parts.get(name.slice(0, i));
      if (k) return k;
    }
  }
  return undefined;
}
