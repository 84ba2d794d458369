/**
 * 8-bit images in memory, laid out height × width × channels (HWC, row-major), and
 * the conversions around them: a model's [-1, 1] CHW output to such an image, and
 * a grid of images. PNG files are png.ts's job.
 */

export interface Image {
  width: number;
  height: number;
  /** 1 gray, 3 RGB. */
  channels: 1 | 3;
  /** width · height · channels bytes, HWC. */
  data: Uint8Array;
}

/**
 * A CHW float image in [-1, 1] (a decoded sample) as an 8-bit HWC image: each value
 * is clamped to [-1, 1] and mapped to round((x + 1) / 2 · 255); NaN becomes 0.
 * `upscale` repeats every pixel upscale × upscale times (nearest neighbour), for
 * looking at tiny test models.
 */
export function toUint8Image(
  data: Float32Array,
  shape: readonly [channels: number, height: number, width: number],
  upscale = 1,
): Image {
  const [c, h, w] = shape;
  if (c !== 1 && c !== 3) {
    throw new RangeError(`toUint8Image: ${c} channels; expected 1 or 3`);
  }
  if (!isPositiveInt(h) || !isPositiveInt(w)) {
    throw new RangeError(`toUint8Image: bad size ${h}x${w}`);
  }
  if (data.length !== c * h * w) {
    throw new RangeError(
      `toUint8Image: ${data.length} values for shape [${shape.join(", ")}]`,
    );
  }
  if (!isPositiveInt(upscale)) {
    throw new RangeError(
      `toUint8Image: upscale ${upscale}; expected a positive integer`,
    );
  }
  const W = w * upscale, H = h * upscale;
  const out = new Uint8Array(H * W * c);
  for (let y = 0; y < H; y++) {
    const sy = Math.floor(y / upscale);
    for (let x = 0; x < W; x++) {
      const sx = Math.floor(x / upscale);
      for (let ch = 0; ch < c; ch++) {
        out[(y * W + x) * c + ch] = toByte(data[(ch * h + sy) * w + sx]);
      }
    }
  }
  return { width: W, height: H, channels: c, data: out };
}

/** [-1, 1] to 0 ... 255. */
export function toByte(x: number): number {
  if (Number.isNaN(x)) return 0;
  const v = Math.min(1, Math.max(-1, x));
  return Math.round(((v + 1) / 2) * 255);
}

/**
 * Lays images of one size out left to right, top to bottom, `columns` to a row
 * (fewer when there are fewer images); cells after the last image are black.
 */
export function makeGrid(images: readonly Image[], columns: number): Image {
  if (images.length === 0) throw new RangeError("makeGrid: no images");
  if (!isPositiveInt(columns)) {
    throw new RangeError(
      `makeGrid: ${columns} columns; expected a positive integer`,
    );
  }
  const { width: w, height: h, channels: c } = images[0];
  for (const [i, im] of images.entries()) {
    if (im.width !== w || im.height !== h || im.channels !== c) {
      throw new RangeError(
        `makeGrid: image ${i} is ${im.width}x${im.height}x${im.channels}, image 0 is ${w}x${h}x${c}`,
      );
    }
  }
  const cols = Math.min(columns, images.length);
  const rows = Math.ceil(images.length / cols);
  const W = cols * w, H = rows * h;
  const out = new Uint8Array(W * H * c);
  const rowBytes = w * c;
  for (const [i, im] of images.entries()) {
    const x0 = (i % cols) * w, y0 = Math.floor(i / cols) * h;
    for (let y = 0; y < h; y++) {
      out.set(
        im.data.subarray(y * rowBytes, (y + 1) * rowBytes),
        ((y0 + y) * W + x0) * c,
      );
    }
  }
  return { width: W, height: H, channels: c, data: out };
}

function isPositiveInt(n: number): boolean {
  return Number.isInteger(n) && n > 0;
}
