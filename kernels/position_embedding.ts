/**
 * DiT's fixed 2D sin-cos position embedding, computed here rather than read from the
 * checkpoint (some checkpoints omit it). The first half of the channels encodes the
 * column, the second half the row; each half is [sin, cos] of position * omega_k,
 * omega_k = 1 / 10000^(k / (D/4)).
 *
 * PixArt scales positions so that any grid spans the trained one: column c of a grid W wide
 * sits at c * (baseSize / W) / interpolationScale (rows likewise), as diffusers'
 * get_2d_sincos_pos_embed does. DiT is the case baseSize = grid, scale 1: integer positions.
 */
export interface PositionScaling {
  /** The trained grid side (sample size / patch size). */
  baseSize: number;
  interpolationScale: number;
}

export function sinCosPositionEmbedding2d(hidden: number, rows: number, cols = rows, scaling?: PositionScaling): Float32Array {
  const quarter = hidden / 4;
  const out = new Float32Array(rows * cols * hidden);
  const rowStep = scaling ? scaling.baseSize / rows / scaling.interpolationScale : 1;
  const colStep = scaling ? scaling.baseSize / cols / scaling.interpolationScale : 1;
  for (let row = 0; row < rows; row++) {
    for (let col = 0; col < cols; col++) {
      const base = (row * cols + col) * hidden;
      for (let k = 0; k < quarter; k++) {
        const omega = 1 / Math.pow(10000, k / quarter);
        const x = col * colStep * omega, y = row * rowStep * omega;
        out[base + k] = Math.sin(x);
        out[base + quarter + k] = Math.cos(x);
        out[base + 2 * quarter + k] = Math.sin(y);
        out[base + 3 * quarter + k] = Math.cos(y);
      }
    }
  }
  return out;
}
