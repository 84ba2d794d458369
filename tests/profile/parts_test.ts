/**
 * Which model part each node of a fora-built graph belongs to (lib/profile/parts.ts),
 * checked on the tiny fixture's real graphs, and how profiler kernel names map back to nodes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { type GraphProto, ModelProtoSchema } from "onnx-buf";
import { graphParts, lookupNode, type PartKey } from "../../lib/profile/parts.ts";
import { tinyBundle } from "../similarity/helpers.ts";

async function nodesOf(path: string): Promise<{ name: string; opType: string }[]> {
  const g = fromBinary(ModelProtoSchema, await Deno.readFile(path)).graph!;
  const out: { name: string; opType: string }[] = [];
  const visit = (graph: GraphProto) => {
    for (const n of graph.node) {
      out.push({ name: n.name, opType: n.opType });
      for (const a of n.attribute) if (a.g) visit(a.g);
    }
  };
  visit(g);
  return out;
}

function label(k: PartKey | undefined): string {
  if (!k) return "(none)";
  return k.part === "block" ? `block.${k.branch}` : k.part;
}

Deno.test("every node of a full-step graph belongs to a named part, blocks split into adaLN, norm, attn, residual, mlp", async () => {
  const path = join(await tinyBundle(), "dit-full-cfg.fp32.onnx");
  const parts = await graphParts(path);
  const nodes = await nodesOf(path);
  assert.equal(parts.size, nodes.length);
  const other = nodes.filter((n) => parts.get(n.name)!.part === "other");
  assert.deepEqual(other, [], "no node is left as other");
  for (const n of nodes) {
    const k = parts.get(n.name)!;
    const m = /^blocks\.(\d+)\/(attn|mlp)?/.exec(n.name);
    if (!m) continue;
    assert.equal(k.part, "block", n.name);
    assert.equal(k.block, Number(m[1]), n.name);
    if (n.opType === "LayerNormalization") assert.equal(k.branch, "norm", n.name);
    if (m[2] && (n.opType === "MatMul" || n.opType === "Softmax")) assert.equal(k.branch, m[2], n.name);
    if (!m[2] && n.opType === "Split") assert.equal(k.branch, "adaln", n.name);
  }
  // Block level: the adaLN Linear's bias Add, and the two gated residuals x + gate * y.
  for (const b of [0, 1]) {
    const adds = nodes.filter((n) => n.opType === "Add" && new RegExp(`^blocks\\.${b}/Add_`).test(n.name)).map((n) =>
      parts.get(n.name)!.branch
    );
    assert.deepEqual(adds.sort(), ["adaln", "residual", "residual"], `block ${b}`);
  }
  const counts = new Map<string, number>();
  for (const k of parts.values()) counts.set(label(k), (counts.get(label(k)) ?? 0) + 1);
  for (
    const want of [
      "x_embedder",
      "t_embedder",
      "y_embedder",
      "conditioning",
      "block.adaln",
      "block.norm",
      "block.attn",
      "block.residual",
      "block.mlp",
      "residuals",
      "final_layer",
      "guidance",
    ]
  ) {
    assert.ok((counts.get(want) ?? 0) > 0, `some node is ${want}: ${JSON.stringify([...counts])}`);
  }
  // The modulate of each branch (x * (1 + scale) + shift) is norm, not attention: 2 blocks x 2 branches x
  // (LayerNorm, Unsqueeze scale, Add 1, Mul, Unsqueeze shift, Add) = 24 nodes.
  assert.equal(counts.get("block.norm"), 24);
});

Deno.test("the reuse graph's x_0 + R_j is the cache part; the literal graph's cached reads are each block's cache branch", async () => {
  const dir = await tinyBundle();
  const reuse = await graphParts(join(dir, "dit-reuse-cfg.fp32.onnx"));
  const labels = new Set([...reuse.values()].map(label));
  assert.ok(labels.has("cache"));
  assert.ok(!labels.has("other"), [...labels].join(", "));
  assert.ok(![...labels].some((l) => l.startsWith("block.")), "a reuse step runs no block");
  const blocks = await graphParts(join(dir, "dit-blocks-cfg.fp32.onnx"));
  const then = [...blocks.entries()].filter(([name]) => name.includes("/then/"));
  assert.ok(then.length > 0);
  for (const [name, k] of then) assert.equal(label(k), "block.cache", name);
  const elseAttn = [...blocks.entries()].filter(([name]) => /^blocks\.0\/else\/attn\/MatMul/.test(name));
  assert.ok(elseAttn.length > 0);
  for (const [name, k] of elseAttn) assert.equal(label(k), "block.attn", name);
});

Deno.test("VAE decoder nodes are the vae part, by decoder stage", async () => {
  const parts = await graphParts(join(await tinyBundle(), "vae-decoder.fp32.onnx"));
  const stages = new Set([...parts.values()].map((k) => `${k.part}.${k.branch}`));
  for (const s of ["vae.mid_block", "vae.up_blocks.0", "vae.conv_in", "vae.conv_out"]) assert.ok(stages.has(s), [...stages].join(", "));
  assert.ok(![...parts.values()].some((k) => k.part !== "vae"), "every node is VAE");
});

Deno.test("profiler kernel names of fused and re-laid-out kernels map back to their node", () => {
  const attn: PartKey = { part: "block", block: 0, branch: "attn" };
  const x: PartKey = { part: "x_embedder", block: null, branch: null };
  const parts = new Map<string, PartKey>([["blocks.0/attn/MatMul_64", attn], ["x_embedder/Conv_7", x]]);
  assert.equal(lookupNode(parts, "blocks.0/attn/MatMul_64_kernel_time"), attn);
  assert.equal(lookupNode(parts, "blocks.0/attn/MatMul_64/MatMulScaleFusion/"), attn);
  assert.equal(lookupNode(parts, "x_embedder/Conv_7:0_nchwc"), x);
  assert.equal(lookupNode(parts, "ReorderOutput"), undefined);
  assert.equal(lookupNode(parts, "blocks.0/attn/MatMul_6"), undefined, "a prefix that is not a whole name does not match");
});
