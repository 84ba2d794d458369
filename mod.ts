/**
 * fora as a library. The CLI (cli/main.ts) is a thin layer over these.
 *
 * Importing this module loads onnxruntime-node (via openSession), which needs
 * `--allow-ffi`; code that only converts or inspects bundles can import
 * `lib/bundle/*.ts` directly instead.
 */

// Errors: every user-caused failure is a ForaError with a one-line message.
export { type ErrorCode, ForaError, isForaError } from "./lib/errors.ts";

// Bundles: convert a checkpoint folder, read and inspect the result.
export { convertBundle, type ConvertOptions, type ConvertResult } from "./lib/bundle/convert.ts";
export {
  BUNDLE_FORMAT,
  BUNDLE_FORMAT_VERSION,
  type DitConventions,
  type DitGraphEntry,
  ditGraphFile,
  ditGraphPath,
  type FileEntry,
  type Guidance,
  type Manifest,
  MANIFEST_FILE,
  type Precision,
  type Space,
  type VaeGraphEntry,
  vaeGraphFile,
  type WeightsEntry,
} from "./lib/bundle/manifest.ts";
export { readManifest, verifyBundle } from "./lib/bundle/read.ts";
export { type BundleInfo, bundleInfo, formatInfo } from "./lib/bundle/info.ts";
export { type ModelSource, readModelSource } from "./lib/bundle/source.ts";
export { FORA_VERSION } from "./lib/bundle/version.ts";

// Model configs.
export {
  conventions,
  DIT_SIZES,
  type DitConfig,
  ditPreset,
  gridSize,
  type Naming,
  nullClass,
  numTokens,
  outChannels,
  parseDiffusersConfig,
  parseOriginalConfig,
} from "./lib/models/dit/config.ts";
export { loadVaeConfig, parseVaeConfig, type VaeConfig, vaePreset } from "./lib/models/vae/config.ts";

// Weights.
export { type Checkpoint, loadCheckpoint } from "./lib/weights/checkpoint.ts";

// Execution (onnxruntime-node).
export { type Device, f32, type HostTensor, i64, openSession, type Session, type SessionOptions } from "./lib/runtime/session.ts";

// Sampling with FORA caching: the generator core, the generate command, evaluation.
export { type BatchRequest, type BatchResult, type Generator, type GeneratorSettings, openGenerator } from "./lib/generator.ts";
export { generate, type GenerateOptions } from "./lib/generate.ts";
export {
  type CachePolicy,
  describePolicy,
  dynamicPolicy,
  forecastPolicy,
  partialPolicy,
  plannedKinds,
  schedulePolicy,
  staticPolicy,
  type StepKind,
} from "./lib/fora/policy.ts";
export type { StepModel } from "./lib/fora/step_model.ts";
export { literalDenoiser, residualDenoiser, type StepReport } from "./lib/fora/denoiser.ts";
export { defaultSteps, makeSampler, type Sampler, type SamplerName, samplerNames } from "./lib/samplers/mod.ts";
export { type EvalOptions, type EvalSummary, evaluate } from "./lib/eval/evaluate.ts";
export { DEFAULT_CLASSIFIER, DEFAULT_MODEL } from "./lib/defaults.ts";

// Events: the NDJSON stream's record types.
export type { ForaEvent, RunTotals } from "./lib/events/types.ts";
