/** Shared test helpers: golden fixtures, graph bundles in temp folders, error metrics. */
import { basename, join } from "node:path";
import { loadCheckpoint } from "../lib/weights/checkpoint.ts";
import { readSafetensorsHeader, readTensorF32 } from "../lib/weights/safetensors.ts";
import { type WeightSource, weightSource } from "../lib/weights/source.ts";
import type { GraphData } from "../lib/onnx/builder.ts";
import { writeModel } from "../lib/onnx/serialize.ts";
import { openSession, type Session } from "../lib/runtime/session.ts";

export const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;

export async function readGolden(path: string): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const header = await readSafetensorsHeader(path);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, ref] of header.tensors) out.set(name, { shape: ref.shape, data: await readTensorF32(ref) });
  return out;
}

/** max |a - b| / max |b|: the relative error every parity test states its tolerance in. */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

/**
 * A temp folder laid out like a bundle: the checkpoint's files hard-linked under
 * weights/, so graphs written at the root can reference them.
 */
export async function tempBundle(checkpointPath: string): Promise<{ dir: string; src: WeightSource; cleanup(): Promise<void> }> {
  const ckpt = await loadCheckpoint(checkpointPath);
  const dir = await Deno.makeTempDir({ prefix: "fora-test-" });
  await Deno.mkdir(join(dir, "weights"));
  for (const f of ckpt.files) await Deno.link(f, join(dir, "weights", basename(f)));
  return {
    dir,
    src: weightSource(ckpt, (f) => `weights/${basename(f)}`),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

export async function sessionFor(dir: string, name: string, graph: GraphData): Promise<Session> {
  const path = join(dir, name);
  await writeModel(path, graph);
  return await openSession(path, { threads: 1 });
}
