/**
 * Finiteness of float data: a NaN or an infinity in a latent, a weight or an input becomes a
 * black image that looks like a result, so fora checks where it costs one pass over data it
 * already holds (inputs when read, the latent after each step).
 */

/** Index of the first NaN or infinity in `data`, or -1 when every value is finite. */
export function firstNonFinite(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    // v - v is 0 for every finite v and NaN for NaN and both infinities: one comparison.
    if (v - v !== 0) return i;
  }
  return -1;
}

/** How a non-finite value is named in messages: "NaN", "Infinity" or "-Infinity", with its index. */
export function describeNonFinite(data: ArrayLike<number>, index: number): string {
  return `${data[index]} at index ${index}`;
}
