/**
 * int8 DiT graphs (--precision int8) against fp32, on both fixture configs, from the golden
 * inputs: one full step's guided output and residuals R_j agree with fp32 within 5e-2
 * relative (max abs diff / max abs fp32). Measured when the bound was set (ONNX Runtime 1.30,
 * AVX512-VNNI CPU), output / residuals: dit-tiny guided 1.6e-2 / 2.0e-2, plain 7.8e-3 /
 * 1.5e-2; dit-pixel guided 2.1e-2 / 1.6e-2, plain 1.4e-2 / 1.6e-2; up to 2.7e-2 at other
 * timesteps and seeds: a margin of about 2x. The block linears must really run in int8 (an
 * error above 1e-4, one DynamicQuantizeMatMul per quantized linear), and the rest of the
 * graph is fp32's: a reuse step, which has no block linear, is bit-identical.
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { buildDitGraphs } from "../../lib/models/dit/graphs.ts";
import { guidanceMask } from "../../kernels/guidance.ts";
import { quantizeDitBlocks } from "../../lib/models/dit/int8.ts";
import { parseOriginalConfig } from "../../lib/models/dit/config.ts";
import { f32, type HostTensor, i64 } from "../../lib/runtime/session.ts";
import { FIXTURES, readGolden, relError, sessionFor, tempBundle } from "../support.ts";

const BOUND = 5e-2;

for (const fixture of ["dit-tiny", "dit-pixel"]) {
  Deno.test(`int8 DiT ${fixture}: a full step agrees with fp32 within ${BOUND} relative; reuse steps are fp32's`, async () => {
    const dir = join(FIXTURES, fixture, "original");
    const cfg = parseOriginalConfig(JSON.parse(await Deno.readTextFile(join(dir, "config.json"))), dir);
    const golden = await readGolden(join(FIXTURES, fixture, "golden-original.safetensors"));
    const G = (n: string) => golden.get(n)!;
    const bundle = await tempBundle(dir);
    try {
      const int8 = await quantizeDitBlocks(bundle.dir, bundle.src, cfg);
      assert.equal(int8.size, 6 * cfg.depth, "q, k, v, proj, fc1 and fc2 of every block");
      const B = G("x").shape[0];
      for (const guided of [true, false]) {
        const feeds = {
          latent: f32(G("x").shape, G("x").data),
          timestep: f32([1], G("t").data),
          class_labels: i64([B], Array.from(G("y").data)),
          ...(guided
            ? { guidance_scale: f32([1], G("cfg_scale").data), guidance_mask: f32([2 * cfg.inChannels], guidanceMask(cfg, "ref")) }
            : {}),
        };
        const fp32 = buildDitGraphs(bundle.src, cfg, { computeType: "float32", cfg: guided });
        const q8 = buildDitGraphs(bundle.src, cfg, { computeType: "float32", cfg: guided, int8 });
        const ops = (kind: "full" | "reuse", op: string, g = q8) => g[kind].nodes.filter((n) => n.opType === op).length;
        assert.equal(ops("full", "DynamicQuantizeMatMul"), 6 * cfg.depth);
        assert.equal(ops("full", "MatMul"), ops("full", "MatMul", fp32) - 6 * cfg.depth, "every other product stays a float MatMul");

        const run = async (name: string, graph: typeof fp32.full, extra: Record<string, HostTensor>) => {
          const s = await sessionFor(bundle.dir, name, graph);
          try {
            return await s.run({ ...feeds, ...extra });
          } finally {
            await s.release();
          }
        };
        const reuseT = { reuse_timesteps: f32([2], G("t_reuse").data) };
        const a = await run("full32.onnx", fp32.full, reuseT), b = await run("full8.onnx", q8.full, reuseT);
        const label = `${guided ? "guided" : "plain"}`;
        for (const out of ["model_out", "residuals"]) {
          const err = relError(b[out].data as Float32Array, a[out].data as Float32Array);
          assert.ok(err <= BOUND, `${label} ${out}: int8 vs fp32 ${err}`);
          assert.ok(err > 1e-4, `${label} ${out}: int8 vs fp32 ${err}: the int8 linears did not run`);
        }
        const n = (a.residuals.data as Float32Array).length / 2;
        const residual = {
          residual: f32([a.residuals.shape[1], a.residuals.shape[2], a.residuals.shape[3]], (a.residuals.data as Float32Array).slice(0, n)),
        };
        const r32 = await run("reuse32.onnx", fp32.reuse, residual), r8 = await run("reuse8.onnx", q8.reuse, residual);
        assert.deepEqual(r8.model_out.data, r32.model_out.data, `${label}: reuse step`);
      }
    } finally {
      await bundle.cleanup();
    }
  });
}
