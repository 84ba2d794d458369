/**
 * DiT graphs against the PyTorch reference goldens (tools/reference/), both naming
 * schemes and both fixture configs. Tolerance: relative error (max abs diff / max abs
 * reference) <= 1e-4 in fp32; the FORA reuse graph must equal the literal per-block
 * cache within 1e-5.
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { buildDitGraphs } from "../../lib/models/dit/graphs.ts";
import { guidanceMask } from "../../kernels/guidance.ts";
import { type DitConfig, parseDiffusersConfig, parseOriginalConfig } from "../../lib/models/dit/config.ts";
import { f32, type HostTensor, i64 } from "../../lib/runtime/session.ts";
import { FIXTURES, readGolden, relError, sessionFor, tempBundle } from "../support.ts";

const CASES = [
  { fixture: "dit-tiny", naming: "original" },
  { fixture: "dit-tiny", naming: "diffusers" },
  { fixture: "dit-pixel", naming: "original" },
  { fixture: "dit-pixel", naming: "diffusers" },
] as const;

async function fixtureConfig(fixture: string, naming: "original" | "diffusers"): Promise<{ cfg: DitConfig; weights: string }> {
  if (naming === "original") {
    const dir = join(FIXTURES, fixture, "original");
    return { cfg: parseOriginalConfig(JSON.parse(await Deno.readTextFile(join(dir, "config.json"))), dir), weights: dir };
  }
  const dir = join(FIXTURES, fixture, "diffusers", "transformer");
  return { cfg: parseDiffusersConfig(JSON.parse(await Deno.readTextFile(join(dir, "config.json"))), dir), weights: dir };
}

function stack(golden: Map<string, { data: Float32Array; shape: number[] }>, prefix: string, n: number): HostTensor {
  const parts = Array.from({ length: n }, (_, k) => golden.get(`${prefix}.${k}`)!);
  const data = new Float32Array(parts.reduce((s, p) => s + p.data.length, 0));
  let o = 0;
  for (const p of parts) data.set(p.data, (o += p.data.length) - p.data.length);
  return f32([n, ...parts[0].shape], data);
}

for (const { fixture, naming } of CASES) {
  Deno.test(`DiT ${fixture} (${naming} naming) matches the PyTorch reference in every graph`, async (t) => {
    const { cfg, weights } = await fixtureConfig(fixture, naming);
    const golden = await readGolden(join(FIXTURES, fixture, `golden-${naming}.safetensors`));
    const G = (n: string) => golden.get(n)!;
    const bundle = await tempBundle(weights);
    try {
      const B = G("x").shape[0];
      const labels = i64([B], Array.from(G("y").data));
      const step = (x: { data: Float32Array; shape: number[] }, tval: number, mode: "ref" | "all") => ({
        latent: f32(x.shape, x.data),
        timestep: f32([1], [tval]),
        class_labels: labels,
        guidance_scale: f32([1], G("cfg_scale").data),
        guidance_mask: f32([2 * cfg.inChannels], guidanceMask(cfg, mode)),
      });
      const cfgGraphs = buildDitGraphs(bundle.src, cfg, { computeType: "float32", cfg: true });
      const plainGraphs = buildDitGraphs(bundle.src, cfg, { computeType: "float32", cfg: false });
      const t0 = G("t").data[0];
      const tReuse = G("t_reuse");
      let residuals: HostTensor;

      await t.step("full step: guided output (ref and all channels) and residuals R_j", async () => {
        const full = await sessionFor(bundle.dir, "full.onnx", cfgGraphs.full);
        for (const mode of ["ref", "all"] as const) {
          const out = await full.run({ ...step(G("x"), t0, mode), reuse_timesteps: f32([2], tReuse.data) });
          assert.ok(relError(out.model_out.data as Float32Array, G(`out_${mode}`).data) <= 1e-4, `out_${mode}`);
          residuals = out.residuals;
        }
        for (let j = 0; j < 2; j++) {
          const rj = (residuals.data as Float32Array).subarray(j * G("residual.0").data.length, (j + 1) * G("residual.0").data.length);
          assert.ok(relError(rj, G(`residual.${j}`).data) <= 1e-4, `residual.${j}`);
        }
        await full.release();
      });

      await t.step("plain (unguided) full step returns the conditional half of the raw output", async () => {
        const plain = await sessionFor(bundle.dir, "plain.onnx", plainGraphs.full);
        const out = await plain.run({
          latent: f32(G("x").shape, G("x").data),
          timestep: f32([1], [t0]),
          class_labels: labels,
          reuse_timesteps: f32([1], [t0]),
        });
        const raw = G("model_out").data;
        assert.ok(relError(out.model_out.data as Float32Array, raw.subarray(0, raw.length / 2)) <= 1e-4);
        await plain.release();
      });

      await t.step("reuse step from R_j matches the literal FORA reuse step", async () => {
        const reuse = await sessionFor(bundle.dir, "reuse.onnx", cfgGraphs.reuse);
        const n = G("residual.0").data.length;
        for (let j = 0; j < 2; j++) {
          const out = await reuse.run({
            ...step(G("x_reuse"), tReuse.data[j], "ref"),
            residual: f32(G("residual.0").shape, (residuals.data as Float32Array).slice(j * n, (j + 1) * n)),
          });
          assert.ok(relError(out.model_out.data as Float32Array, G(`reuse_out_ref.${j}`).data) <= 1e-4, `reuse ${j}`);
        }
        await reuse.release();
      });

      await t.step("per-block literal path: computes A_k/M_k, and with all blocks cached equals the reuse graph (1e-5)", async () => {
        const blocks = await sessionFor(bundle.dir, "blocks.onnx", cfgGraphs.blocks);
        const reuse = await sessionFor(bundle.dir, "reuse2.onnx", cfgGraphs.reuse);
        const L = cfg.depth;
        const zeros = f32([L, ...G("attn.0").shape]);
        const computed = await blocks.run({
          ...step(G("x"), t0, "ref"),
          reuse: { dtype: "bool", shape: [L], data: new Uint8Array(L) },
          cached_attn: zeros,
          cached_mlp: zeros,
        });
        assert.ok(relError(computed.model_out.data as Float32Array, G("out_ref").data) <= 1e-4, "blocks full");
        assert.ok(relError(computed.attn.data as Float32Array, stack(golden, "attn", L).data as Float32Array) <= 1e-4, "A_k");
        assert.ok(relError(computed.mlp.data as Float32Array, stack(golden, "mlp", L).data as Float32Array) <= 1e-4, "M_k");
        const n = G("residual.0").data.length;
        for (let j = 0; j < 2; j++) {
          const literal = await blocks.run({
            ...step(G("x_reuse"), tReuse.data[j], "ref"),
            reuse: { dtype: "bool", shape: [L], data: new Uint8Array(L).fill(1) },
            cached_attn: computed.attn,
            cached_mlp: computed.mlp,
          });
          const viaResidual = await reuse.run({
            ...step(G("x_reuse"), tReuse.data[j], "ref"),
            residual: f32(G("residual.0").shape, (residuals.data as Float32Array).slice(j * n, (j + 1) * n)),
          });
          const err = relError(viaResidual.model_out.data as Float32Array, literal.model_out.data as Float32Array);
          assert.ok(err <= 1e-5, `R_j route vs literal cache: ${err}`);
        }
        await blocks.release();
        await reuse.release();
      });
    } finally {
      await bundle.cleanup();
    }
  });
}

Deno.test("fp16 and fused-attention DiT graphs agree with fp32 within 1e-2 relative; zero reuse steps give empty residuals", async () => {
  const { cfg, weights } = await fixtureConfig("dit-tiny", "original");
  const golden = await readGolden(join(FIXTURES, "dit-tiny", "golden-original.safetensors"));
  const G = (n: string) => golden.get(n)!;
  const bundle = await tempBundle(weights);
  try {
    const feeds = (reuse: number[]) => ({
      latent: f32(G("x").shape, G("x").data),
      timestep: f32([1], G("t").data),
      class_labels: i64([2], Array.from(G("y").data)),
      guidance_scale: f32([1], G("cfg_scale").data),
      guidance_mask: f32([8], guidanceMask(cfg, "ref")),
      reuse_timesteps: f32([reuse.length], reuse),
    });
    for (
      const [label, opts] of [
        ["fp16", { computeType: "float16", cfg: true }],
        ["fused attention", { computeType: "float32", cfg: true, attention: "fused" }],
        ["fp16 + fused attention", { computeType: "float16", cfg: true, attention: "fused" }],
      ] as const
    ) {
      const s = await sessionFor(bundle.dir, "variant.onnx", buildDitGraphs(bundle.src, cfg, opts).full);
      const out = await s.run(feeds(Array.from(G("t_reuse").data)));
      const err = relError(out.model_out.data as Float32Array, G("out_ref").data);
      const tol = opts.computeType === "float16" ? 1e-2 : 1e-4;
      assert.ok(err <= tol, `${label}: ${err}`);
      const rn = G("residual.0").data.length;
      for (let j = 0; j < 2; j++) {
        const rerr = relError((out.residuals.data as Float32Array).subarray(j * rn, (j + 1) * rn), G(`residual.${j}`).data);
        assert.ok(rerr <= tol, `${label} residual ${j}: ${rerr}`);
      }
      if (label === "fp16") {
        // Five upcoming steps take the MatMul form of the sum: same values.
        const many = await s.run(feeds([...G("t_reuse").data, ...G("t_reuse").data, G("t_reuse").data[0]]));
        for (let j = 0; j < 5; j++) {
          const rerr = relError((many.residuals.data as Float32Array).subarray(j * rn, (j + 1) * rn), G(`residual.${j % 2}`).data);
          assert.ok(rerr <= tol, `J=5 residual ${j}: ${rerr}`);
        }
        const none = await s.run(feeds([]));
        assert.deepEqual(none.residuals.shape, [0, 4, 16, 64]);
        assert.ok(relError(none.model_out.data as Float32Array, G("out_ref").data) <= tol);
      }
      await s.release();
    }
  } finally {
    await bundle.cleanup();
  }
});
