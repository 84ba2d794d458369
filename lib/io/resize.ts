/**
 * Resize to cover, then center crop: how diffusers' PixArt pipelines bring an image sampled at
 * an aspect-ratio bin back to the requested size. The image is scaled by the larger of the two
 * side ratios (each new side truncated to an integer), with bilinear interpolation on half-pixel
 * centres and no antialiasing (PyTorch's `interpolate(mode="bilinear", align_corners=False)`),
 * and the middle `width` x `height` is kept (the odd pixel of a split goes to the right / bottom).
 */

/** `data` [c, h, w] resized to cover `width` x `height` and center-cropped to it; [c, height, width]. */
export function resizeAndCrop(data: Float32Array, shape: readonly [number, number, number], width: number, height: number): Float32Array {
  const [c, h, w] = shape;
  if (h === height && w === width) return data;
  const ratio = Math.max(height / h, width / w);
  const rh = Math.trunc(h * ratio), rw = Math.trunc(w * ratio);
  const x0 = Math.trunc((rw - width) / 2), y0 = Math.trunc((rh - height) / 2);
  const taps = (inSize: number, outSize: number, start: number, n: number) => {
    const scale = inSize / outSize;
    return Array.from({ length: n }, (_, i) => {
      const src = Math.max(0, (start + i + 0.5) * scale - 0.5);
      const lo = Math.min(Math.floor(src), inSize - 1);
      return { lo, hi: Math.min(lo + 1, inSize - 1), f: src - lo };
    });
  };
  const ys = taps(h, rh, y0, height), xs = taps(w, rw, x0, width);
  const out = new Float32Array(c * height * width);
  for (let ch = 0; ch < c; ch++) {
    const plane = data.subarray(ch * h * w, (ch + 1) * h * w);
    for (let y = 0; y < height; y++) {
      const { lo: ya, hi: yb, f: fy } = ys[y];
      for (let x = 0; x < width; x++) {
        const { lo: xa, hi: xb, f: fx } = xs[x];
        const top = plane[ya * w + xa] * (1 - fx) + plane[ya * w + xb] * fx;
        const bottom = plane[yb * w + xa] * (1 - fx) + plane[yb * w + xb] * fx;
        out[(ch * height + y) * width + x] = top * (1 - fy) + bottom * fy;
      }
    }
  }
  return out;
}
