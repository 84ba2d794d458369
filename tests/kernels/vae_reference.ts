/**
 * Naive TypeScript references for the VAE kernels (direct loops over NCHW arrays), the
 * helpers the VAE kernel tests share, and hand-computed checks of the references
 * themselves, so that a kernel test failing points at the kernel.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ComputeType, GraphBuilder, GraphData, Value } from "../../lib/onnx/builder.ts";
import { writeModel } from "../../lib/onnx/serialize.ts";
import { f32, type HostTensor, openSession } from "../../lib/runtime/session.ts";

// ---- shared helpers ---------------------------------------------------------------

/** Deterministic values in [-1, 1) (mulberry32). */
export function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/** max |a - b| / max |b| */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "length differs");
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): number {
  const e = relErr(actual, expected);
  assert.ok(Number.isFinite(e) && e <= tol, `${what}: relative error ${e.toExponential(3)} > ${tol}`);
  return e;
}

/** A float constant in the builder's compute type (stands in for a checkpoint weight). */
export function param(g: GraphBuilder, values: Float32Array, shape: number[]): Value {
  return g.constant(values, shape, g.computeType);
}

/**
 * Writes `graph` to a temp folder (or to `dir`, where its external weights are), runs it
 * once on the CPU EP and returns its outputs.
 */
export async function runGraph(
  graph: GraphData,
  feeds: Record<string, HostTensor>,
  dir?: string,
): Promise<Record<string, HostTensor>> {
  const folder = dir ?? await Deno.makeTempDir({ prefix: "fora-vae-kernel-" });
  const path = join(folder, `model-${crypto.randomUUID().slice(0, 8)}.onnx`);
  try {
    await writeModel(path, graph);
    const session = await openSession(path, { threads: 1 });
    try {
      return await session.run(feeds);
    } finally {
      await session.release();
    }
  } finally {
    await (dir ? Deno.remove(path) : Deno.remove(folder, { recursive: true }));
  }
}

export function input(shape: number[], seed: number, scale = 1): HostTensor {
  return f32(shape, rand(shape.reduce((a, b) => a * b, 1), seed, scale));
}

export const COMPUTE_TYPES: { type: ComputeType; tol: number }[] = [
  { type: "float32", tol: 1e-5 },
  { type: "float16", tol: 1e-2 },
];

// ---- references (NCHW, float64 accumulation) ----------------------------------------

export function convRef(
  x: Float32Array,
  [n, c, h, w]: number[],
  weight: Float32Array,
  [oc, ic, kh, kw]: number[],
  bias: Float32Array | null,
  pad: number,
): { data: Float32Array; shape: number[] } {
  assert.equal(c, ic);
  const oh = h + 2 * pad - kh + 1, ow = w + 2 * pad - kw + 1;
  const out = new Float32Array(n * oc * oh * ow);
  for (let b = 0; b < n; b++) {
    for (let o = 0; o < oc; o++) {
      for (let y = 0; y < oh; y++) {
        for (let xx = 0; xx < ow; xx++) {
          let s = bias ? bias[o] : 0;
          for (let i = 0; i < ic; i++) {
            for (let dy = 0; dy < kh; dy++) {
              const sy = y + dy - pad;
              if (sy < 0 || sy >= h) continue;
              for (let dx = 0; dx < kw; dx++) {
                const sx = xx + dx - pad;
                if (sx < 0 || sx >= w) continue;
                s += x[((b * c + i) * h + sy) * w + sx] * weight[((o * ic + i) * kh + dy) * kw + dx];
              }
            }
          }
          out[((b * oc + o) * oh + y) * ow + xx] = s;
        }
      }
    }
  }
  return { data: out, shape: [n, oc, oh, ow] };
}

export function groupNormRef(
  x: Float32Array,
  [n, c, ...spatial]: number[],
  groups: number,
  gamma: Float32Array,
  beta: Float32Array,
  eps = 1e-6,
): Float32Array {
  const hw = spatial.reduce((a, b) => a * b, 1);
  const cg = c / groups;
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++) {
    for (let gi = 0; gi < groups; gi++) {
      const start = (b * c + gi * cg) * hw, count = cg * hw;
      let mean = 0;
      for (let i = 0; i < count; i++) mean += x[start + i];
      mean /= count;
      let v = 0;
      for (let i = 0; i < count; i++) v += (x[start + i] - mean) ** 2;
      v /= count; // biased, like torch
      const inv = 1 / Math.sqrt(v + eps);
      for (let i = 0; i < count; i++) {
        const ch = gi * cg + Math.floor(i / hw);
        out[start + i] = (x[start + i] - mean) * inv * gamma[ch] + beta[ch];
      }
    }
  }
  return out;
}

export function siluRef(x: Float32Array): Float32Array {
  return x.map((v) => v / (1 + Math.exp(-v)));
}

export function upsampleRef(x: Float32Array, [n, c, h, w]: number[]): Float32Array {
  const out = new Float32Array(n * c * 4 * h * w);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < 2 * h; y++) {
      for (let xx = 0; xx < 2 * w; xx++) {
        out[(p * 2 * h + y) * 2 * w + xx] = x[(p * h + (y >> 1)) * w + (xx >> 1)];
      }
    }
  }
  return out;
}

/** Tokens [T, C] times W^T ([out, in]) plus b. */
function linearRef(t: Float64Array, tokens: number, cin: number, w: Float32Array, b: Float32Array, cout: number): Float64Array {
  const out = new Float64Array(tokens * cout);
  for (let i = 0; i < tokens; i++) {
    for (let o = 0; o < cout; o++) {
      let s = b[o];
      for (let k = 0; k < cin; k++) s += t[i * cin + k] * w[o * cin + k];
      out[i * cout + o] = s;
    }
  }
  return out;
}

export interface AttentionRefWeights {
  gamma: Float32Array;
  beta: Float32Array;
  wq: Float32Array;
  bq: Float32Array;
  wk: Float32Array;
  bk: Float32Array;
  wv: Float32Array;
  bv: Float32Array;
  wo: Float32Array;
  bo: Float32Array;
}

export function attentionRef(x: Float32Array, [n, c, h, w]: number[], groups: number, p: AttentionRefWeights): Float32Array {
  const hw = h * w;
  const normed = groupNormRef(x, [n, c, h, w], groups, p.gamma, p.beta);
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++) {
    const t = new Float64Array(hw * c);
    for (let ch = 0; ch < c; ch++) for (let i = 0; i < hw; i++) t[i * c + ch] = normed[(b * c + ch) * hw + i];
    const q = linearRef(t, hw, c, p.wq, p.bq, c);
    const k = linearRef(t, hw, c, p.wk, p.bk, c);
    const v = linearRef(t, hw, c, p.wv, p.bv, c);
    const a = new Float64Array(hw * c);
    for (let i = 0; i < hw; i++) {
      const s = new Float64Array(hw);
      let max = -Infinity;
      for (let j = 0; j < hw; j++) {
        let d = 0;
        for (let ch = 0; ch < c; ch++) d += q[i * c + ch] * k[j * c + ch];
        s[j] = d / Math.sqrt(c);
        max = Math.max(max, s[j]);
      }
      let sum = 0;
      for (let j = 0; j < hw; j++) sum += s[j] = Math.exp(s[j] - max);
      for (let j = 0; j < hw; j++) for (let ch = 0; ch < c; ch++) a[i * c + ch] += (s[j] / sum) * v[j * c + ch];
    }
    const o = linearRef(a, hw, c, p.wo, p.bo, c);
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < hw; i++) {
        const at = (b * c + ch) * hw + i;
        out[at] = x[at] + o[i * c + ch];
      }
    }
  }
  return out;
}
