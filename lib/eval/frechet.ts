/**
 * Fréchet distance between two Gaussians fitted to feature sets (the formula behind
 * FID): |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).
 * tr((S1 S2)^(1/2)) is computed as the sum of square roots of the eigenvalues of the
 * symmetric PSD matrix S1^(1/2) S2 S1^(1/2), which avoids a non-symmetric sqrtm.
 */
import { EigenvalueDecomposition, Matrix } from "ml-matrix";

export interface Gaussian {
  mu: Float64Array;
  /** Row-major [F, F]. */
  sigma: Float64Array;
}

/** Mean and (unbiased, N-1) covariance of `n` feature rows of width `f`. */
export function fitGaussian(features: Float32Array, n: number, f: number): Gaussian {
  if (n < 2) throw new RangeError("fitGaussian needs at least 2 samples");
  const mu = new Float64Array(f);
  for (let i = 0; i < n; i++) for (let j = 0; j < f; j++) mu[j] += features[i * f + j];
  for (let j = 0; j < f; j++) mu[j] /= n;
  const sigma = new Float64Array(f * f);
  const centred = new Float64Array(f);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < f; j++) centred[j] = features[i * f + j] - mu[j];
    for (let a = 0; a < f; a++) {
      const ca = centred[a];
      for (let b = a; b < f; b++) sigma[a * f + b] += ca * centred[b];
    }
  }
  for (let a = 0; a < f; a++) {
    for (let b = a; b < f; b++) {
      const v = sigma[a * f + b] / (n - 1);
      sigma[a * f + b] = v;
      sigma[b * f + a] = v;
    }
  }
  return { mu, sigma };
}

export function frechetDistance(p: Gaussian, q: Gaussian): number {
  const f = p.mu.length;
  let meanTerm = 0;
  for (let i = 0; i < f; i++) meanTerm += (p.mu[i] - q.mu[i]) ** 2;
  const s1 = toMatrix(p.sigma, f), s2 = toMatrix(q.sigma, f);
  const root1 = symmetricSqrt(s1);
  const inner = root1.mmul(s2).mmul(root1);
  const eig = new EigenvalueDecomposition(symmetrize(inner), { assumeSymmetric: true });
  const traceSqrt = eig.realEigenvalues.reduce((acc, v) => acc + Math.sqrt(Math.max(v, 0)), 0);
  return meanTerm + s1.trace() + s2.trace() - 2 * traceSqrt;
}

function toMatrix(a: Float64Array, f: number): Matrix {
  return new Matrix(Array.from({ length: f }, (_, i) => Array.from(a.subarray(i * f, (i + 1) * f))));
}

/** Rounding makes products of symmetric matrices slightly asymmetric. */
function symmetrize(m: Matrix): Matrix {
  return m.add(m.transpose()).mul(0.5);
}

/** Principal square root of a symmetric PSD matrix (negative round-off eigenvalues clamped). */
function symmetricSqrt(m: Matrix): Matrix {
  const eig = new EigenvalueDecomposition(symmetrize(m), { assumeSymmetric: true });
  const v = eig.eigenvectorMatrix;
  const d = Matrix.diag(eig.realEigenvalues.map((x) => Math.sqrt(Math.max(x, 0))));
  return v.mmul(d).mmul(v.transpose());
}
