/**
 * DiT's fixed 2D sin-cos position embedding, computed here rather than read from the
 * checkpoint (some checkpoints omit it). The first half of the channels encodes the
 * column, the second half the row; each half is [sin, cos] of position * omega_k,
 * omega_k = 1 / 10000^(k / (D/4)).
 */
export function sinCosPositionEmbedding2d(hidden: number, grid: number): Float32Array {
  const quarter = hidden / 4;
  const out = new Float32Array(grid * grid * hidden);
  for (let row = 0; row < grid; row++) {
    for (let col = 0; col < grid; col++) {
      const base = (row * grid + col) * hidden;
      for (let k = 0; k < quarter; k++) {
        const omega = 1 / Math.pow(10000, k / quarter);
        out[base + k] = Math.sin(col * omega);
        out[base + quarter + k] = Math.cos(col * omega);
        out[base + 2 * quarter + k] = Math.sin(row * omega);
        out[base + 3 * quarter + k] = Math.cos(row * omega);
      }
    }
  }
  return out;
}
