/** Kernel FLOP counts (lib/profile/flops.ts) and the attribution of a trace to parts (attribute.ts). */
import assert from "node:assert/strict";
import { kernelCost, kernelFlops } from "../../lib/profile/flops.ts";
import { attribute } from "../../lib/profile/attribute.ts";
import type { PartKey } from "../../lib/profile/parts.ts";
import { parseTrace } from "../../lib/profile/trace.ts";

Deno.test("a MatMul [.., M, K] x [K, N] counts 2MKN FLOPs; Gemm adds its bias; Conv counts weight size per output position", () => {
  assert.equal(kernelFlops("MatMul", [[2, 16, 64], [64, 256]], [[2, 16, 256]]), 2 * 2 * 16 * 64 * 256);
  assert.equal(kernelFlops("MatMul", [[2, 4, 16, 16], [2, 4, 16, 16]], [[2, 4, 16, 16]]), 2 * 2 * 4 * 16 * 16 * 16);
  assert.equal(kernelFlops("FusedMatMul", [[8, 16, 64], [8, 16, 64]], [[8, 16, 16]]), 2 * 8 * 16 * 16 * 64, "B transposed");
  assert.equal(kernelFlops("Gemm", [[2, 64], [384, 64], [384]], [[2, 384]]), 2 * 2 * 384 * 64 + 2 * 384);
  // A 2x2 patch embedding: 64 filters of 4x2x2 over a 4x4 output grid, batch 2.
  assert.equal(kernelFlops("Conv", [[2, 4, 8, 8], [64, 4, 2, 2], [64]], [[2, 64, 4, 4]]), 2 * 2 * 16 * (64 * 16) + 2 * 64 * 16);
  assert.equal(kernelFlops("Add", [[2, 16, 64], [64]], [[2, 16, 64]]), 2 * 16 * 64);
  assert.equal(kernelFlops("Softmax", [[2, 4, 16, 16]], [[2, 4, 16, 16]]), 5 * 2 * 4 * 16 * 16);
  assert.equal(kernelFlops("Reshape", [[2, 16, 64]], [[2, 16, 4, 16]]), 0, "data movement");
  assert.equal(kernelFlops("NoSuchOp", [[3]], [[3]]), 0);
});

Deno.test("a pre-packed weight (missing from the trace) is recovered from the activation and output shapes", () => {
  // ONNX Runtime lists only the activation of a MatMul whose constant weight it pre-packed.
  assert.deepEqual(kernelCost("MatMul", [[2, 16, 64]], [[2, 16, 256]]), { flops: 2 * 2 * 16 * 64 * 256, hiddenWeightBytes: 64 * 256 * 4 });
  // Gemm fused from MatMul + Add: activation and bias only.
  assert.deepEqual(kernelCost("Gemm", [[1, 256], [64]], [[1, 64]], 2), { flops: 2 * 256 * 64 + 64, hiddenWeightBytes: 256 * 64 * 2 });
  // A transposed activation [.., K, M] (VAE attention): K is the other dim.
  assert.equal(kernelCost("FusedMatMul", [[1, 32, 64]], [[1, 64, 48]]).flops, 2 * 64 * 48 * 32);
  assert.deepEqual(kernelCost("MatMul", [[2, 16, 64], [64, 256]], [[2, 16, 256]]).hiddenWeightBytes, 0);
});

const A: PartKey = { part: "block", block: 0, branch: "attn" };
const M: PartKey = { part: "block", block: 0, branch: "mlp" };

function event(name: string, op: string, ts: number, dur: number) {
  return {
    cat: "Node",
    name: `${name}_kernel_time`,
    ts,
    dur,
    args: {
      op_name: op,
      input_type_shape: [{ float: [4, 8] }],
      output_type_shape: [{ float: [4, 8] }],
      activation_size: "128",
      parameter_size: "0",
      output_size: "128",
    },
  };
}

/** Three runs of: attn (10 us), an ORT-inserted reorder (1 us), an If (50 us, its branch's kernels are listed too), mlp (20 us). */
function threeRuns(slowMlpInRun = -1) {
  const events: Record<string, unknown>[] = [];
  for (let r = 0; r < 3; r++) {
    const t = 1000 * r;
    events.push({ cat: "Session", name: "model_run", ts: t, dur: 900 });
    events.push(event("blocks.0/attn/MatMul_1", "MatMul", t + 1, 10));
    events.push(event("ReorderOutput", "ReorderOutput", t + 20, 1));
    events.push(event("blocks.0/If_2", "If", t + 30, 50));
    events.push(event("blocks.0/mlp/MatMul_3", "MatMul", t + 100, r === slowMlpInRun ? 2000 : 20));
  }
  return parseTrace(events);
}

const parts = new Map<string, PartKey>([["blocks.0/attn/MatMul_1", A], ["blocks.0/mlp/MatMul_3", M], ["blocks.0/If_2", M]]);

Deno.test("attribution sums kernel time per part, leaves out If containers, and gives ORT-inserted kernels the part before them", () => {
  const a = attribute(threeRuns(), parts, { stat: "sum" });
  assert.equal(a.runs, 3);
  assert.equal(a.kernelUs, 3 * (10 + 1 + 20));
  const us = Object.fromEntries(a.parts.map((p) => [p.key.branch, p.us]));
  assert.deepEqual(us, { attn: 3 * 11, mlp: 3 * 20 });
  assert.equal(a.inserted, 3);
  assert.equal(a.runUs, 2700);
  assert.equal(a.parts.find((p) => p.key.branch === "mlp")!.kernels, 3);
});

Deno.test("warm-up runs are left out, and the median statistic ignores a kernel that lost its core once", () => {
  const skipped = attribute(threeRuns(), parts, { skipRuns: 1, stat: "sum" });
  assert.equal(skipped.runs, 2);
  assert.equal(skipped.skippedRuns, 1);
  assert.equal(skipped.kernelUs, 2 * 31);
  const noisy = threeRuns(1);
  assert.equal(attribute(noisy, parts, { stat: "sum" }).parts.find((p) => p.key.branch === "mlp")!.us, 2040);
  assert.equal(attribute(noisy, parts, { stat: "median" }).parts.find((p) => p.key.branch === "mlp")!.us, 60);
  // One run only: nothing to leave out.
  assert.equal(
    attribute(parseTrace([{ cat: "Session", name: "model_run", ts: 0, dur: 5 }, event("blocks.0/attn/MatMul_1", "MatMul", 1, 3)]), parts, {
      skipRuns: 1,
    }).runs,
    1,
  );
});
