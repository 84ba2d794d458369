/**
 * Resolution binning, as diffusers' PixArt pipelines do it (`use_resolution_binning`): a request
 * is snapped to the bin of the model's aspect-ratio table whose ratio (height / width, rounded to
 * two decimals) is nearest to the request's, sampled there, and the image is brought back to the
 * request by lib/io/resize.ts.
 *
 * The tables for 256, 512 and 1024 pixels are one table scaled: each bin is a height and width in
 * sixteenths of the trained side (64 px at 1024, 32 at 512, 16 at 256). The wide bins below are
 * listed from the widest; the tall ones are the transposes of some of them (the published table
 * leaves out the others). For other trained sizes (the test fixtures) the same table is
 * scaled and each side rounded to a multiple of the size step; a trained side above 1024 has a
 * table of its own in diffusers (Sigma 2K), which fora does not have: binning is refused there.
 */
import { ForaError } from "../../errors.ts";

/** [height, width] in sixteenths of the trained side, height <= width. */
const WIDE: readonly (readonly [number, number])[] = [
  [8, 32],
  [8, 29],
  [9, 28],
  [9, 27],
  [9, 26],
  [10, 25],
  [10, 24],
  [11, 23],
  [11, 22],
  [11, 21],
  [12, 21],
  [12, 20],
  [13, 19],
  [13, 18],
  [14, 18],
  [14, 17],
  [15, 17],
  [15, 16],
  [16, 16],
];
/** The wide bins whose transposes are bins too. */
const TRANSPOSED = new Set([
  "15,16",
  "15,17",
  "14,17",
  "14,18",
  "13,18",
  "13,19",
  "12,20",
  "12,21",
  "11,22",
  "11,23",
  "10,24",
  "10,25",
  "9,27",
  "8,32",
]);

interface Bin {
  ratio: number;
  height: number;
  width: number;
}

/** The table in sixteenths, ascending by its rounded ratio (the order ties are broken in). */
const BINS: readonly Bin[] = [
  ...WIDE,
  ...WIDE.filter(([h, w]) => TRANSPOSED.has(`${h},${w}`)).map(([h, w]) => [w, h] as const),
].map(([height, width]) => ({ ratio: Math.round((height / width) * 100) / 100, height, width }))
  .sort((a, b) => a.ratio - b.ratio);

/** diffusers has a table of its own above this trained side (Sigma 2K). */
export const MAX_BINNED_SIDE = 1024;

/**
 * The size a `width` x `height` request is sampled at: the nearest bin of a model trained at
 * `trained` pixels square, its sides multiples of `step`.
 */
export function binnedSize(width: number, height: number, trained: number, step: number): { width: number; height: number } {
  if (trained > MAX_BINNED_SIDE) {
    throw new ForaError(
      "usage",
      `resolution binning knows the aspect-ratio bins of models trained at up to ${MAX_BINNED_SIDE} px; this one is ${trained} px: add --no-resolution-binning`,
    );
  }
  const ar = height / width;
  let best = BINS[0];
  for (const b of BINS) if (Math.abs(b.ratio - ar) < Math.abs(best.ratio - ar)) best = b;
  const side = (sixteenths: number) => Math.max(step, Math.round((sixteenths * trained) / 16 / step) * step);
  return { width: side(best.width), height: side(best.height) };
}
