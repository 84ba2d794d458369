/**
 * fp32 GEMM rates on DiT's linear-layer shapes, ONNX Runtime (what fora runs) side by side
 * with PyTorch on its CPU's own OpenBLAS kernels (bench/torch_gemm.py, bench/fair_blas.py),
 * in alternating rounds in one run. Each ONNX Runtime row is a one-node graph over a
 * constant weight, fed [M, K] (2-D) or [B, T, K] (3-D, as fora's graphs feed it).
 *
 *   deno task bench:gemm [--presets XL/2-256,S/2-256] [--rounds 2] [--seconds 1]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import os from "node:os";
import { ditPreset, numTokens } from "../lib/models/dit/config.ts";
import { GraphBuilder } from "../lib/onnx/builder.ts";
import { writeModel } from "../lib/onnx/serialize.ts";
import { f32, openSession } from "../lib/runtime/session.ts";

const { values: args } = parseArgs({
  options: {
    presets: { type: "string", default: "XL/2-256,S/2-256" },
    rounds: { type: "string", default: "2" },
    seconds: { type: "string", default: "1" },
  },
});
const rounds = Number(args.rounds), seconds = Number(args.seconds);

interface Shape {
  preset: string;
  layer: string;
  batch: number;
  tokens: number;
  k: number;
  n: number;
}

/** The linear layers of one DiT block at batch 2 (one sample + its CFG twin). */
function ditShapes(preset: string): Shape[] {
  const c = ditPreset(preset), t = numTokens(c), d = c.hiddenSize, h = Math.round(d * 4);
  const row = (layer: string, k: number, n: number): Shape => ({ preset, layer, batch: 2, tokens: t, k, n });
  return [row("qkv", d, 3 * d), row("attn proj", d, d), row("mlp fc1", d, h), row("mlp fc2", h, d)];
}

async function ortRate(dir: string, s: Shape, rank: 2 | 3): Promise<number> {
  const g = new GraphBuilder("gemm", "float32");
  const shape = rank === 2 ? [s.batch * s.tokens, s.k] : [s.batch, s.tokens, s.k];
  const x = g.input("x", "float32", shape);
  const w = g.constant(Float32Array.from({ length: s.k * s.n }, (_, i) => Math.sin(i) / Math.sqrt(s.k)), [s.k, s.n]);
  g.output(g.matmul(x, w), "y");
  const path = join(dir, `gemm-${s.k}x${s.n}-${rank}d.onnx`);
  await writeModel(path, g.data());
  const session = await openSession(path);
  const feeds = { x: f32(shape, Float32Array.from({ length: s.batch * s.tokens * s.k }, (_, i) => Math.cos(i))) };
  try {
    for (let i = 0; i < 3; i++) await session.run(feeds);
    const times: number[] = [];
    const end = performance.now() + seconds * 1000;
    while (performance.now() < end || times.length < 5) {
      const t0 = performance.now();
      await session.run(feeds);
      times.push(performance.now() - t0);
    }
    return (2 * s.batch * s.tokens * s.k * s.n) / median(times) / 1e6;
  } finally {
    await session.release();
  }
}

interface TorchGemm {
  torch: string;
  threads: number;
  blas_kernels: { openblas: string | null; core?: string; removed: string[] };
  gflops: number[];
}

async function torchRates(shapes: Shape[]): Promise<TorchGemm> {
  const script = new URL("./torch_gemm.py", import.meta.url).pathname;
  const mkn = shapes.map((s) => [s.batch * s.tokens, s.k, s.n]);
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [script, JSON.stringify(mkn)],
    env: { OMP_NUM_THREADS: "2" },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`torch_gemm.py failed (exit ${out.code})`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const range = (xs: number[]) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;

const shapes = args.presets!.split(",").flatMap(ditShapes);
const dir = await Deno.makeTempDir({ prefix: "fora-bench-gemm-" });
try {
  const ort2: number[][] = shapes.map(() => []), ort3: number[][] = shapes.map(() => []), torch: number[][] = shapes.map(() => []);
  let peer: TorchGemm | undefined;
  for (let r = 0; r < rounds; r++) {
    for (const [i, s] of shapes.entries()) {
      ort2[i].push(await ortRate(dir, s, 2));
      ort3[i].push(await ortRate(dir, s, 3));
    }
    peer = await torchRates(shapes);
    peer.gflops.forEach((g, i) => torch[i].push(g));
    console.error(`round ${r + 1}/${rounds} done`);
  }
  console.log(
    `fp32 GEMM rates, GFLOP/s (2 per multiply-add), ${rounds} alternating rounds of ${seconds} s per cell; ` +
      `${os.cpus()[0]?.model ?? "?"}, ${os.cpus().length} cores`,
  );
  console.log(`ONNX Runtime: onnxruntime-node CPU EP, intra-op threads chosen by ONNX Runtime`);
  console.log(
    `PyTorch ${peer?.torch}, ${peer?.threads} threads, ${peer?.blas_kernels.openblas ?? "no OpenBLAS"}` +
      ` (removed from its process: ${peer?.blas_kernels.removed.join(", ") || "nothing"})\n`,
  );
  console.log(`| model | layer | M × K × N | ORT MatMul 2-D | ORT MatMul 3-D | PyTorch | ORT 3-D / PyTorch |`);
  console.log(`|---|---|---|---|---|---|---|`);
  for (const [i, s] of shapes.entries()) {
    const ratio = median(ort3[i]) / median(torch[i]);
    console.log(
      `| ${s.preset} | ${s.layer} | ${s.batch * s.tokens} × ${s.k} × ${s.n} | ${range(ort2[i])} | ${range(ort3[i])} | ${
        range(torch[i])
      } | ${ratio.toFixed(2)} |`,
    );
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
