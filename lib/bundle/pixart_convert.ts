/** `fora convert` of a PixArt pipeline: the graphs, the copied tokenizer and the manifest of a PixArt bundle. */
import { join, relative } from "node:path";
import type { ComputeType } from "../onnx/builder.ts";
import { writeModel } from "../onnx/serialize.ts";
import type { Checkpoint } from "../weights/checkpoint.ts";
import { weightSource } from "../weights/source.ts";
import { buildVaeDecoderGraph } from "../models/vae/graph.ts";
import { upscaleFactor } from "../models/vae/config.ts";
import { buildT5EncoderGraph } from "../models/t5/graph.ts";
import { PIXART_FREQ_DIVISOR, PIXART_NORM_EPS } from "../models/pixart/config.ts";
import { numTokens, outChannels } from "../models/patch_grid.ts";
import { buildPixartGraphs, DEFAULT_VAE_SCALE_FACTOR, PIXART_STEP_KINDS, type PixartGraphKind } from "../models/pixart/graphs.ts";
import { loadPixartWeights } from "../models/pixart/weights.ts";
import { SPIECE_FILE, TOKENIZER_JSON_FILE } from "../text/tokenizer.ts";
import {
  type AttentionKind,
  BUNDLE_FORMAT,
  type FileEntry,
  type FloatPrecision,
  GUIDANCES,
  type VaeGraphEntry,
  vaeGraphFile,
  type WeightsEntry,
} from "./manifest.ts";
import {
  type PixartGraphEntry,
  pixartGraphFile,
  type PixartManifest,
  t5GraphFile,
  TOKENIZER_FOLDER,
  type Unconditional,
} from "./pixart_manifest.ts";
import type { PixartSource } from "./pixart_source.ts";
import { FORA_VERSION } from "./version.ts";
import { PIXART_DDIM_DEFAULT } from "./scheduler_config.ts";

/** The bundle-writing helpers of convert.ts, passed in (they place and hash files). */
export interface BundleWriter {
  placeWeights(ckpt: Checkpoint, work: string, folder: string): Promise<Map<string, string>>;
  weightsEntry(ckpt: Checkpoint, placed: Map<string, string>): Promise<WeightsEntry>;
  listFiles(root: string): Promise<FileEntry[]>;
}

const COMPUTE_TYPE: Record<FloatPrecision, ComputeType> = { fp32: "float32", fp16: "float16" };

export async function buildPixartBundle(
  source: PixartSource,
  work: string,
  precisions: FloatPrecision[],
  io: BundleWriter,
  log: (line: string) => void,
): Promise<PixartManifest> {
  const cfg = source.transformer.config;
  const trFiles = await io.placeWeights(source.transformer.checkpoint, work, "weights/pixart");
  const teFiles = await io.placeWeights(source.textEncoder.checkpoint, work, "weights/t5");
  const vaeFiles = source.vae ? await io.placeWeights(source.vae.checkpoint, work, "weights/vae") : undefined;
  const locate = (placed: Map<string, string>) => (file: string) => {
    const rel = placed.get(file);
    if (rel === undefined) throw new Error(`internal: ${file} was not placed in the bundle`);
    return rel;
  };
  const trSrc = weightSource(source.transformer.checkpoint, locate(trFiles));
  const unconditional: Unconditional = loadPixartWeights(trSrc, cfg).nullCaption ? "null-caption" : "empty-prompt";
  // diffusers' pipelines: 2^(VAE levels - 1), or 8 without a VAE
  const vaeScaleFactor = source.vae ? upscaleFactor(source.vae.config) : DEFAULT_VAE_SCALE_FACTOR;

  const graphs: PixartGraphEntry[] = [];
  for (const precision of precisions) {
    const attention: AttentionKind = precision === "fp16" ? "fused" : "portable";
    for (const guidance of GUIDANCES) {
      const built = buildPixartGraphs(trSrc, cfg, {
        computeType: COMPUTE_TYPE[precision],
        cfg: guidance === "cfg",
        attention,
        vaeScaleFactor,
      });
      const kinds: PixartGraphKind[] = guidance === "cfg" ? ["text", ...PIXART_STEP_KINDS] : [...PIXART_STEP_KINDS];
      for (const kind of kinds) {
        const g = kind === "text" ? null : guidance;
        const file = pixartGraphFile(kind, g, precision);
        await writeModel(join(work, file), built[kind], `fora ${FORA_VERSION}: PixArt ${kind}${g ? `, ${g}` : ""}, ${precision}`);
        graphs.push({ file, kind, guidance: g, precision, attention });
        log(`graph: ${file}`);
      }
    }
  }

  const teSrc = weightSource(source.textEncoder.checkpoint, locate(teFiles));
  const teGraphs: PixartManifest["textEncoder"]["graphs"] = [];
  for (const precision of precisions) {
    const file = t5GraphFile(precision);
    await writeModel(
      join(work, file),
      buildT5EncoderGraph(teSrc, source.textEncoder.config, COMPUTE_TYPE[precision]),
      `fora ${FORA_VERSION}: T5 encoder, ${precision}`,
    );
    teGraphs.push({ file, precision });
    log(`graph: ${file}`);
  }

  await Deno.mkdir(join(work, TOKENIZER_FOLDER));
  // loadT5Tokenizer has read at least one of the two tokenizer files.
  for (const name of [SPIECE_FILE, TOKENIZER_JSON_FILE, "tokenizer_config.json", "special_tokens_map.json"]) {
    await Deno.copyFile(join(source.tokenizerDir, name), join(work, TOKENIZER_FOLDER, name)).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }

  let vae: PixartManifest["vae"] = null;
  if (source.vae && vaeFiles) {
    const vaeSrc = weightSource(source.vae.checkpoint, locate(vaeFiles));
    const latentSize: [number, number] = [cfg.inputSize, cfg.inputSize];
    const vgraphs: VaeGraphEntry[] = [];
    for (const precision of precisions) {
      const file = vaeGraphFile(precision);
      await writeModel(
        join(work, file),
        buildVaeDecoderGraph(vaeSrc, source.vae.config, COMPUTE_TYPE[precision], { height: latentSize[0], width: latentSize[1] }),
        `fora ${FORA_VERSION}: VAE decoder, ${precision}`,
      );
      vgraphs.push({ file, precision, latentSize });
      log(`graph: ${file}`);
    }
    vae = { config: source.vae.config, weights: await io.weightsEntry(source.vae.checkpoint, vaeFiles), graphs: vgraphs };
  }

  log("hashing files (sha256)");
  return {
    format: BUNDLE_FORMAT,
    formatVersion: 1,
    foraVersion: FORA_VERSION,
    architecture: "pixart",
    source: { layout: "diffusers", path: relative(work, source.root) }, // as convert.ts records it
    space: "latent",
    pixart: {
      naming: cfg.naming,
      config: cfg,
      conventions: {
        timestepFreqDim: 256,
        freqDivisor: PIXART_FREQ_DIVISOR,
        normEps: PIXART_NORM_EPS,
        outChannels: outChannels(cfg),
        tokens: numTokens(cfg),
        maxTokens: cfg.maxTokens,
        unconditional,
        family: source.family,
        vaeScaleFactor,
      },
      weights: await io.weightsEntry(source.transformer.checkpoint, trFiles),
      graphs,
      scheduler: source.scheduler ?? PIXART_DDIM_DEFAULT,
    },
    textEncoder: {
      config: source.textEncoder.config,
      weights: await io.weightsEntry(source.textEncoder.checkpoint, teFiles),
      graphs: teGraphs,
      tokenizer: TOKENIZER_FOLDER,
    },
    vae,
    files: await io.listFiles(work),
  };
}
