/**
 * Multistep DPM-Solver++ (Lu et al. 2022) with data prediction, as PixArt-alpha samples: the
 * reference DPM_Solver(algorithm_type="dpmsolver++").sample(x, steps=20, order=2,
 * skip_type="time_uniform", method="multistep") on NoiseScheduleVP('discrete', betas).
 *
 * Times t_0 = tStart (1) > t_1 > ... > t_S = tEnd (1/N = 1e-3). The model is called at t_0..t_{S-1}
 * with model time 1000 (t - 1/N) (999, 949.05, ... for 20 steps) and its eps turned into data:
 * x0 = (x - sigma_t eps) / alpha_t. With lambda the half log-SNR, h = lambda_t - lambda_s:
 *
 *   order 1 (= DDIM from s to t):  x_t = (sigma_t/sigma_s) x - alpha_t expm1(-h) x0_s
 *   order 2 (2M), previous points s1 < s0 = s in time, r = (lambda_s0 - lambda_s1) / h,
 *     D = (x0_s0 - x0_s1) / r:
 *       midpoint ("dpmsolver"): x_t = (sigma_t/sigma_s0) x - alpha_t expm1(-h) x0_s0 - 0.5 alpha_t expm1(-h) D
 *       taylor:                 x_t = (sigma_t/sigma_s0) x - alpha_t expm1(-h) x0_s0 + alpha_t (expm1(-h)/h + 1) D
 *
 * The first step is order 1 (no history yet). With lowerOrderFinal the last steps drop to
 * order min(order, steps - k); like the reference, only for runs of fewer than 10 steps
 * (lowerOrderFinalBelow; diffusers uses 15), so the default 20-step run is order 2 to the end.
 * Deterministic: the noise generators are not used. Coefficients float64, latents float32.
 */
import { ForaError } from "../errors.ts";
import { checkOutput, checkShape, splitOutput } from "./io.ts";
import { linearBetas, vpAlpha, vpInverseLambda, vpLambda, vpModelTime, type VpSchedule, vpSchedule, vpSigma } from "./schedule.ts";
import type { Denoiser, LatentShape, SampleNoise, SamplerPlan, StepCallback } from "./types.ts";

export type SkipType = "time_uniform" | "logSNR" | "time_quadratic";
export type SolverType = "midpoint" | "taylor";

export interface DpmSolverOptions {
  steps?: number;
  order?: 1 | 2;
  skipType?: SkipType;
  solverType?: SolverType;
  /** Start and end times (defaults 1 and 1/N). */
  tStart?: number;
  tEnd?: number;
  lowerOrderFinal?: boolean;
  /** lowerOrderFinal applies only when steps < this (reference: 10). */
  lowerOrderFinalBelow?: number;
  /** Model outputs 2C channels (eps, then variance values, which the solver ignores). */
  learnSigma?: boolean;
  betas?: Float64Array;
}

export interface DpmSolverPlan extends SamplerPlan {
  name: "dpm-solver++";
  /** t_0 .. t_S (S+1 continuous times, descending). */
  times: number[];
  /** Solver order of step k (t_k -> t_{k+1}). */
  orders: number[];
  solverType: SolverType;
  vp: VpSchedule;
  learnSigma: boolean;
}

export const DPM_SOLVER_DEFAULT_STEPS = 20;

/** torch.linspace(start, end, n) in float64: the first half counts up from start, the second down from end. */
function linspace(start: number, end: number, n: number): number[] {
  if (n === 1) return [start];
  const step = (end - start) / (n - 1), half = Math.floor(n / 2);
  return Array.from({ length: n }, (_, i) => i < half ? start + step * i : end - step * (n - 1 - i));
}

function timeSteps(vp: VpSchedule, skip: SkipType, tT: number, t0: number, n: number): number[] {
  switch (skip) {
    case "time_uniform":
      return linspace(tT, t0, n + 1);
    case "time_quadratic":
      return linspace(Math.sqrt(tT), Math.sqrt(t0), n + 1).map((v) => v * v);
    case "logSNR":
      return linspace(vpLambda(vp, tT), vpLambda(vp, t0), n + 1).map((l) => vpInverseLambda(vp, l));
  }
}

export function planDpmSolver(opts: DpmSolverOptions = {}): DpmSolverPlan {
  const steps = opts.steps ?? DPM_SOLVER_DEFAULT_STEPS, order = opts.order ?? 2;
  if (order !== 1 && order !== 2) throw new ForaError("usage", `DPM-Solver++ order ${order} must be 1 or 2`);
  if (!Number.isSafeInteger(steps) || steps < order || steps > 1000) {
    throw new ForaError("usage", `DPM-Solver++ steps ${steps} must be an integer from ${order} to 1000`);
  }
  const vp = vpSchedule(opts.betas ?? linearBetas());
  const tStart = opts.tStart ?? 1, tEnd = opts.tEnd ?? 1 / vp.totalN;
  if (!(tStart <= 1 && tEnd > 0 && tEnd < tStart)) {
    throw new ForaError("usage", `DPM-Solver++ needs 1 >= tStart > tEnd > 0; got ${tStart} and ${tEnd}`);
  }
  const times = timeSteps(vp, opts.skipType ?? "time_uniform", tStart, tEnd, steps);
  const lowerFinal = (opts.lowerOrderFinal ?? true) && steps < (opts.lowerOrderFinalBelow ?? 10);
  const orders = Array.from({ length: steps }, (_, k) => Math.min(k + 1, lowerFinal ? Math.min(order, steps - k) : order));
  return {
    name: "dpm-solver++",
    modelTimes: times.slice(0, steps).map((t) => vpModelTime(vp, t)),
    times,
    orders,
    solverType: opts.solverType ?? "midpoint",
    vp,
    learnSigma: opts.learnSigma ?? true,
  };
}

/** x0 = (x - sigma_t eps) / alpha_t. */
export function dataPrediction(vp: VpSchedule, t: number, x: Float32Array, eps: Float32Array): Float32Array {
  const alpha = vpAlpha(vp, t), sigma = vpSigma(vp, t);
  const out = new Float32Array(x.length);
  for (let j = 0; j < x.length; j++) out[j] = (x[j] - sigma * eps[j]) / alpha;
  return out;
}

/** DPM-Solver++ order 1 from s to t: (sigma_t/sigma_s) x - alpha_t expm1(-h) x0_s. */
export function dpmSolverFirstUpdate(vp: VpSchedule, s: number, t: number, x: Float32Array, x0: Float32Array): Float32Array {
  const h = vpLambda(vp, t) - vpLambda(vp, s);
  const cx = vpSigma(vp, t) / vpSigma(vp, s), c0 = -vpAlpha(vp, t) * Math.expm1(-h);
  const out = new Float32Array(x.length);
  for (let j = 0; j < x.length; j++) out[j] = cx * x[j] + c0 * x0[j];
  return out;
}

/**
 * Multistep DPM-Solver++ order 2 to t from the current point s0 (data prediction x0_s0) and the
 * previous one s1 (x0_s1).
 */
export function dpmSolverSecondUpdate(
  vp: VpSchedule,
  s1: number,
  s0: number,
  t: number,
  x: Float32Array,
  x0s1: Float32Array,
  x0s0: Float32Array,
  solverType: SolverType = "midpoint",
): Float32Array {
  const l1 = vpLambda(vp, s1), l0 = vpLambda(vp, s0), lt = vpLambda(vp, t);
  const h = lt - l0, r = (l0 - l1) / h;
  const alphaT = vpAlpha(vp, t), phi1 = Math.expm1(-h);
  const cx = vpSigma(vp, t) / vpSigma(vp, s0), c0 = -alphaT * phi1;
  const cd = (solverType === "midpoint" ? -0.5 * alphaT * phi1 : alphaT * (phi1 / h + 1)) / r;
  const out = new Float32Array(x.length);
  for (let j = 0; j < x.length; j++) out[j] = cx * x[j] + c0 * x0s0[j] + cd * (x0s0[j] - x0s1[j]);
  return out;
}

export async function sampleDpmSolver(
  model: Denoiser,
  xT: Float32Array,
  plan: DpmSolverPlan,
  shape: LatentShape,
  _noise: SampleNoise,
  onStep?: StepCallback,
): Promise<Float32Array> {
  checkShape(shape, xT);
  const { vp, times, orders } = plan, steps = orders.length;
  let x: Float32Array = Float32Array.from(xT);
  let prev: Float32Array | null = null;
  for (let k = 0; k < steps; k++) {
    const i = steps - 1 - k, modelTime = plan.modelTimes[k];
    const step = { k, index: i, modelTime };
    const out = await model(x, step);
    checkOutput(out, shape, plan.learnSigma, modelTime);
    const x0 = dataPrediction(vp, times[k], x, splitOutput(out, shape, plan.learnSigma).eps);
    x = orders[k] === 1 || prev === null
      ? dpmSolverFirstUpdate(vp, times[k], times[k + 1], x, x0)
      : dpmSolverSecondUpdate(vp, times[k - 1], times[k], times[k + 1], x, prev, x0, plan.solverType);
    prev = x0;
    onStep?.(step);
  }
  return x;
}
