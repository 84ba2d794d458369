/**
 * PixArt at a size other than the trained one (`fora generate --width W --height H`).
 *
 * The step graphs have a static latent size (the micro-conditions and the position table are
 * constants of the graph), so each other size gets its own graph set, built on first use from
 * the bundle's weights and kept: in BUNDLE/sizes/ when the bundle folder is writable, else in
 * $XDG_CACHE_HOME/fora/sizes/ (~/.cache without it). A set's folder name carries a hash of
 * everything its graphs depend on (fora's version, the weights' and configs' hashes, the
 * precision, guidance and size), so a reconverted bundle never reuses stale graphs. The set
 * is built in a temporary folder and renamed into place: a stopped build leaves nothing that
 * a later run would take for finished. The weights are hard-linked into the set's folder
 * (ONNX Runtime reads external data only from inside the model's folder), or copied across
 * file systems.
 */
import { createHash } from "node:crypto";
import { dirname, join, relative, sep } from "node:path";
import { ForaError } from "../../errors.ts";
import { type FloatPrecision, type Guidance, vaeGraphFile } from "../../bundle/manifest.ts";
import { FORA_VERSION } from "../../bundle/version.ts";
import { pixartGraphFile, type PixartManifest } from "../../bundle/pixart_manifest.ts";
import { writeModel } from "../../onnx/serialize.ts";
import type { ComputeType } from "../../onnx/builder.ts";
import { readSafetensorsHeader, type TensorRef } from "../../weights/safetensors.ts";
import { weightSource } from "../../weights/source.ts";
import { buildVaeDecoderGraph } from "../vae/graph.ts";
import { buildPixartGraphs, PIXART_STEP_KINDS } from "./graphs.ts";
import { type LatentSize, trainedLatent } from "../patch_grid.ts";

/** Where a run's step and VAE graphs live: the bundle itself (trained size) or a size's graph set. */
export interface SizedGraphs {
  latent: LatentSize;
  /** Folder of the step and VAE graphs, under the names the bundle uses; null: the bundle's own. */
  dir: string | null;
  /** Pixel size the decoded images are resized and cropped to (resolution binning); absent: as decoded. */
  output?: { width: number; height: number };
}

/** Pixels per latent pixel times the patch size: what an image side must be a multiple of. */
export function sizeStep(m: PixartManifest): number {
  return m.pixart.conventions.vaeScaleFactor! * m.pixart.config.patchSize;
}

/** The model's trained image size in pixels. */
export function trainedPixels(m: PixartManifest): { width: number; height: number } {
  const side = m.pixart.config.inputSize * m.pixart.conventions.vaeScaleFactor!;
  return { width: side, height: side };
}

/** The latent of a `width` x `height` image, or a usage error naming the nearest sizes that work. */
export function latentOf(m: PixartManifest, width: number, height: number): LatentSize {
  const step = sizeStep(m), f = m.pixart.conventions.vaeScaleFactor!;
  for (const [flag, v] of [["--width", width], ["--height", height]] as const) {
    if (v % step !== 0) {
      const lo = Math.max(step, Math.floor(v / step) * step);
      throw new ForaError(
        "usage",
        `${flag} ${v} is not a multiple of ${step} (the VAE factor ${f} x the patch size ${m.pixart.config.patchSize}); use ${lo} or ${
          lo + step
        }`,
      );
    }
  }
  return { height: height / f, width: width / f };
}

/**
 * The graphs of a run at `latent`: the bundle's own at the trained size, else the size's
 * graph set, built now when no earlier run built it (`log` gets one line before the build).
 */
export async function sizedGraphs(
  model: string,
  m: PixartManifest,
  latent: LatentSize,
  want: { precision: FloatPrecision; guidance: Guidance },
  log: (line: string) => void,
): Promise<SizedGraphs> {
  const trained = trainedLatent(m.pixart.config);
  if (latent.height === trained.height && latent.width === trained.width) return { latent, dir: null };
  const name = `${latent.height}x${latent.width}-${want.precision}-${want.guidance}-${setKey(m, latent, want)}`;
  const roots = [join(model, "sizes"), join(cacheHome(), "fora", "sizes")];
  for (const root of roots) {
    const dir = join(root, name);
    if (await isDir(dir)) return { latent, dir };
  }
  const refused: string[] = [];
  for (const root of roots) {
    const made = await makeWorkDir(root);
    if ("why" in made) {
      refused.push(made.why);
      continue;
    }
    const work = made.work;
    const dir = join(root, name);
    try {
      const started = performance.now();
      log(`building the ${want.precision} graphs for a ${latent.height}x${latent.width} latent (first use of this size) in ${dir}`);
      await buildSet(model, m, latent, want, work);
      await Deno.rename(work, dir).catch(async (e) => {
        // another run finished the same set first: keep theirs
        if (!(await isDir(dir))) throw e;
        await Deno.remove(work, { recursive: true });
      });
      log(`built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      return { latent, dir };
    } catch (e) {
      await Deno.remove(work, { recursive: true }).catch(() => {});
      throw e;
    }
  }
  throw new ForaError(
    "io",
    `cannot build the graphs for a ${latent.height}x${latent.width} latent: no writable place (${
      refused.join("; ")
    }); make the bundle folder writable or set XDG_CACHE_HOME to a writable folder`,
  );
}

function cacheHome(): string {
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  if (xdg) return xdg;
  return join(Deno.env.get("HOME") ?? ".", ".cache");
}

/** Hash of everything a size's graphs depend on. */
function setKey(m: PixartManifest, latent: LatentSize, want: { precision: FloatPrecision; guidance: Guidance }): string {
  const used = new Set([...m.pixart.weights.files, ...(m.vae?.weights.files ?? [])]);
  const h = createHash("sha256");
  h.update(JSON.stringify({
    fora: FORA_VERSION,
    config: m.pixart.config,
    conventions: m.pixart.conventions,
    vae: m.vae?.config ?? null,
    weights: m.files.filter((f) => used.has(f.path)).map((f) => [f.path, f.sha256]),
    latent,
    want,
  }));
  return h.digest("hex").slice(0, 16);
}

/** A fresh temporary folder under `root`, or why `root` cannot be written (read-only, not a folder). */
async function makeWorkDir(root: string): Promise<{ work: string } | { why: string }> {
  try {
    await Deno.mkdir(root, { recursive: true });
    return { work: await Deno.makeTempDir({ dir: root, prefix: ".building-" }) };
  } catch (e) {
    return { why: `${root}: ${(e as Error).message}` };
  }
}

const COMPUTE_TYPE: Record<FloatPrecision, ComputeType> = { fp32: "float32", fp16: "float16" };

async function buildSet(
  model: string,
  m: PixartManifest,
  latent: LatentSize,
  want: { precision: FloatPrecision; guidance: Guidance },
  work: string,
): Promise<void> {
  // The weights under the same bundle-relative paths, so that the graphs' external references read as in the bundle.
  const place = async (files: string[]) => {
    for (const f of files) {
      await Deno.mkdir(join(work, dirname(f)), { recursive: true });
      await Deno.link(join(model, f), join(work, f)).catch(() => Deno.copyFile(join(model, f), join(work, f)));
    }
    // the bundle keeps shards without their index: the file list is the manifest's
    const tensors = new Map<string, TensorRef>();
    for (const f of files) for (const [name, ref] of (await readSafetensorsHeader(join(work, f))).tensors) tensors.set(name, ref);
    return { dir: join(work, dirname(files[0])), files: files.map((f) => join(work, f)), tensors };
  };
  const inBundle = (file: string) => relative(work, file).split(sep).join("/");
  const ckpt = await place(m.pixart.weights.files);
  const built = buildPixartGraphs(weightSource(ckpt, inBundle), m.pixart.config, {
    computeType: COMPUTE_TYPE[want.precision],
    cfg: want.guidance === "cfg",
    attention: want.precision === "fp16" ? "fused" : "portable",
    vaeScaleFactor: m.pixart.conventions.vaeScaleFactor,
    latent,
  });
  for (const kind of PIXART_STEP_KINDS) {
    const file = pixartGraphFile(kind, want.guidance, want.precision);
    await writeModel(
      join(work, file),
      built[kind],
      `fora ${FORA_VERSION}: PixArt ${kind}, ${want.guidance}, ${want.precision}, latent ${latent.height}x${latent.width}`,
    );
  }
  if (m.vae) {
    const vae = await place(m.vae.weights.files);
    await writeModel(
      join(work, vaeGraphFile(want.precision)),
      buildVaeDecoderGraph(weightSource(vae, inBundle), m.vae.config, COMPUTE_TYPE[want.precision], latent),
      `fora ${FORA_VERSION}: VAE decoder, ${want.precision}, latent ${latent.height}x${latent.width}`,
    );
  }
}

async function isDir(path: string): Promise<boolean> {
  return await Deno.stat(path).then((s) => s.isDirectory, () => false);
}
