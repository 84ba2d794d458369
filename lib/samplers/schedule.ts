/**
 * DiT's noise schedule, all in float64, in two views:
 *
 * - discrete (guided-diffusion's GaussianDiffusion / SpacedDiffusion, as DiT and PixArt's IDDPM
 *   use it): linear betas, timestep respacing, and the per-index coefficients of p_sample and
 *   DDIM;
 * - continuous-time VP (DPM-Solver's NoiseScheduleVP('discrete')): log alpha_t interpolated
 *   piecewise-linearly over t_n = (n+1)/N, for DPM-Solver++.
 *
 * Operation order follows the reference numpy code, so the discrete coefficients match numpy's
 * float64 values (up to the last bit of log/sqrt where libm differs).
 */
import { ForaError } from "../errors.ts";
import { checkSteps } from "./io.ts";

/** Number of training timesteps of DiT and PixArt. */
export const TRAIN_TIMESTEPS = 1000;

/**
 * guided-diffusion's "linear" schedule: betas from scale*1e-4 to scale*0.02, scale = 1000/n,
 * spaced as numpy.linspace does it.
 */
export function linearBetas(numTimesteps = TRAIN_TIMESTEPS): Float64Array {
  const scale = 1000 / numTimesteps;
  return linspace(scale * 0.0001, scale * 0.02, numTimesteps);
}

/** numpy.linspace(start, end, n): start + i * step, the last one exactly `end` (n = 1: start alone). */
export function linspace(start: number, end: number, n: number): Float64Array {
  if (n < 2) return new Float64Array(n).fill(start);
  const out = new Float64Array(n);
  const step = (end - start) / (n - 1);
  for (let i = 0; i < n; i++) out[i] = i * step + start;
  out[n - 1] = end;
  return out;
}

/** Per-index coefficients of a (possibly respaced) discrete diffusion, as GaussianDiffusion holds them. */
export interface DiscreteSchedule {
  betas: Float64Array;
  logBetas: Float64Array;
  alphasCumprod: Float64Array;
  /** alphasCumprod shifted right, 1 first. */
  alphasCumprodPrev: Float64Array;
  sqrtRecipAlphasCumprod: Float64Array;
  sqrtRecipm1AlphasCumprod: Float64Array;
  /** q(x_{t-1} | x_t, x_0) variance: beta (1 - abar_prev) / (1 - abar) ("fixed small"). */
  posteriorVariance: Float64Array;
  /** log of posteriorVariance with its first element replaced by the second (it is 0). */
  posteriorLogVarianceClipped: Float64Array;
  /** log of ("fixed large") [posteriorVariance[1], betas[1], betas[2], ...]. */
  fixedLargeLogVariance: Float64Array;
  posteriorMeanCoef1: Float64Array;
  posteriorMeanCoef2: Float64Array;
}

export function discreteSchedule(betas: Float64Array): DiscreteSchedule {
  const n = betas.length;
  if (n < 2) throw new ForaError("usage", `a diffusion needs at least 2 timesteps, got ${n}`);
  const f = () => new Float64Array(n);
  const s: DiscreteSchedule = {
    betas: Float64Array.from(betas),
    logBetas: f(),
    alphasCumprod: f(),
    alphasCumprodPrev: f(),
    sqrtRecipAlphasCumprod: f(),
    sqrtRecipm1AlphasCumprod: f(),
    posteriorVariance: f(),
    posteriorLogVarianceClipped: f(),
    fixedLargeLogVariance: f(),
    posteriorMeanCoef1: f(),
    posteriorMeanCoef2: f(),
  };
  let acp = 1;
  for (let i = 0; i < n; i++) {
    const beta = betas[i];
    if (!(beta > 0 && beta <= 1)) throw new ForaError("usage", `beta[${i}] = ${beta} is outside (0, 1]`);
    const prev = acp;
    acp *= 1 - beta;
    s.logBetas[i] = Math.log(beta);
    s.alphasCumprod[i] = acp;
    s.alphasCumprodPrev[i] = prev;
    s.sqrtRecipAlphasCumprod[i] = Math.sqrt(1 / acp);
    s.sqrtRecipm1AlphasCumprod[i] = Math.sqrt(1 / acp - 1);
    s.posteriorVariance[i] = beta * (1 - prev) / (1 - acp);
    s.posteriorMeanCoef1[i] = beta * Math.sqrt(prev) / (1 - acp);
    s.posteriorMeanCoef2[i] = (1 - prev) * Math.sqrt(1 - beta) / (1 - acp);
  }
  for (let i = 0; i < n; i++) {
    s.posteriorLogVarianceClipped[i] = Math.log(s.posteriorVariance[i === 0 ? 1 : i]);
    s.fixedLargeLogVariance[i] = i === 0 ? s.posteriorLogVarianceClipped[0] : s.logBetas[i];
  }
  return s;
}

/** Python's round() on a float: to the nearest integer, ties to even. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * guided-diffusion's space_timesteps (DiT's diffusion/respace.py): the retained original
 * timesteps, ascending. The process is cut into len(sectionCounts) near-equal sections; a section
 * of `size` steps keeps `count` of them at start + round(cur), where cur starts at 0 and grows by
 * (size-1)/(count-1) per kept step, summed in float64 (not k*stride: the running sum decides
 * the ties).
 *
 * With one section this is round(k*(n-1)/(S-1)) for most S (all of 10, 20, 25, 50, 100, 250,
 * 1000) but not every S: for S = 21 the running sum lands on 499.49999999999994 where
 * 10*999/20 is exactly 499.5, so the reference keeps 499 and the closed form 500.
 */
export function spaceTimesteps(numTimesteps: number, sectionCounts: number | readonly number[]): number[] {
  const counts = typeof sectionCounts === "number" ? [sectionCounts] : sectionCounts;
  if (counts.length === 0) throw new ForaError("usage", "respacing needs at least one section count");
  const sizePer = Math.floor(numTimesteps / counts.length);
  const extra = numTimesteps % counts.length;
  const kept = new Set<number>();
  let start = 0;
  counts.forEach((count, i) => {
    const size = sizePer + (i < extra ? 1 : 0);
    if (!Number.isSafeInteger(count) || count < 1 || count > size) {
      throw new ForaError("usage", `cannot divide a section of ${size} timesteps into ${count} steps`);
    }
    const stride = count <= 1 ? 1 : (size - 1) / (count - 1);
    let cur = 0;
    for (let k = 0; k < count; k++) {
      kept.add(start + roundHalfEven(cur));
      cur += stride;
    }
    start += size;
  });
  return [...kept].sort((a, b) => a - b);
}

/** A respaced diffusion: the retained original timesteps and the schedule over them. */
export interface RespacedSchedule {
  /** Original timestep of each respaced index i (ascending; guided-diffusion's timestep_map). */
  timesteps: number[];
  /** Coefficients per respaced index, from the respaced betas 1 - abar_i / abar_prev. */
  schedule: DiscreteSchedule;
}

/**
 * SpacedDiffusion(space_timesteps(n, [steps])): the respaced betas are 1 - abar_t / abar_prev
 * over the kept timesteps t (abar of the base schedule), and the coefficients are recomputed
 * from them.
 */
export function respace(steps: number, betas: Float64Array = linearBetas()): RespacedSchedule {
  checkSteps(steps, betas.length, "respacing");
  const timesteps = spaceTimesteps(betas.length, steps);
  const keep = new Set(timesteps);
  const newBetas: number[] = [];
  let acp = 1, last = 1;
  for (let t = 0; t < betas.length; t++) {
    acp *= 1 - betas[t];
    if (keep.has(t)) {
      newBetas.push(1 - acp / last);
      last = acp;
    }
  }
  if (newBetas.length < 2) throw new ForaError("usage", `respacing to ${steps} step(s) leaves no diffusion to sample; use 2 or more`);
  return { timesteps, schedule: discreteSchedule(Float64Array.from(newBetas)) };
}

// ---------------------------------------------------------------------------------------------
// Continuous-time view (DPM-Solver's NoiseScheduleVP with schedule='discrete')

/**
 * log alpha_t = 0.5 * sum_{m<=n} log(1 - beta_m) at t_n = (n+1)/N, linear in between and
 * linearly extrapolated past the ends. alpha_t^2 = abar, sigma_t^2 = 1 - alpha_t^2,
 * lambda_t = log alpha_t - log sigma_t.
 */
export interface VpSchedule {
  tArray: Float64Array;
  logAlphaArray: Float64Array;
  /** N after clipping (1000 for DiT's betas, where nothing is clipped). */
  totalN: number;
}

/**
 * Builds the VP view of discrete betas. Like the reference, trailing timesteps whose lambda is
 * below `clippedLambda` (-5.1) are dropped first (only cosine-like schedules have any; the
 * linear one ends at lambda = -5.06), and N is what remains.
 */
export function vpSchedule(betas: Float64Array = linearBetas(), clippedLambda = -5.1): VpSchedule {
  let logAlphas: number[] = [];
  let sum = 0;
  for (const beta of betas) logAlphas.push(0.5 * (sum += Math.log(1 - beta)));
  let drop = 0;
  while (drop < logAlphas.length && lambdaOfLogAlpha(logAlphas[logAlphas.length - 1 - drop]) < clippedLambda) drop++;
  if (drop > 0) logAlphas = logAlphas.slice(0, logAlphas.length - drop);
  const n = logAlphas.length;
  if (n < 2) throw new ForaError("usage", "the noise schedule has fewer than 2 usable timesteps");
  const tArray = new Float64Array(n);
  for (let i = 0; i < n; i++) tArray[i] = (i + 1) / n;
  return { tArray, logAlphaArray: Float64Array.from(logAlphas), totalN: n };
}

function lambdaOfLogAlpha(la: number): number {
  return la - 0.5 * Math.log(-Math.expm1(2 * la));
}

/** Piecewise-linear interpolation through (xp, yp), xp ascending, outer segments extended. */
function interpolate(x: number, xp: ArrayLike<number>, yp: ArrayLike<number>): number {
  const k = xp.length;
  let lo = 0, hi = k - 1;
  // find j with xp[j] <= x <= xp[j+1], clamped to the outer segments
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xp[mid] <= x) lo = mid;
    else hi = mid;
  }
  return yp[lo] + (x - xp[lo]) * (yp[lo + 1] - yp[lo]) / (xp[lo + 1] - xp[lo]);
}

export function vpLogAlpha(vp: VpSchedule, t: number): number {
  return interpolate(t, vp.tArray, vp.logAlphaArray);
}

export function vpAlpha(vp: VpSchedule, t: number): number {
  return Math.exp(vpLogAlpha(vp, t));
}

/** sigma_t = sqrt(1 - alpha_t^2). */
export function vpSigma(vp: VpSchedule, t: number): number {
  return Math.sqrt(-Math.expm1(2 * vpLogAlpha(vp, t)));
}

/** lambda_t = log alpha_t - log sigma_t, the half log-SNR. */
export function vpLambda(vp: VpSchedule, t: number): number {
  return lambdaOfLogAlpha(vpLogAlpha(vp, t));
}

/** The t with lambda_t = lambda (inverse of vpLambda). */
export function vpInverseLambda(vp: VpSchedule, lambda: number): number {
  const y = -2 * lambda;
  const logAlpha = -0.5 * (Math.max(0, y) + Math.log1p(Math.exp(-Math.abs(y))));
  const xp = Float64Array.from(vp.logAlphaArray).reverse();
  const yp = Float64Array.from(vp.tArray).reverse();
  return interpolate(logAlpha, xp, yp);
}

/** The discrete-time model input for continuous t: 1000 * (t - 1/N), so t = 1 gives 999. */
export function vpModelTime(vp: VpSchedule, t: number): number {
  return (t - 1 / vp.totalN) * 1000;
}
