/**
 * Colour maps from d3-scale-chromatic (viridis for the heatmaps, a categorical scheme for
 * chart series), as 256-entry RGB lookup tables for rasters and CSS colours for SVG.
 */
import { interpolateViridis, schemeTableau10 } from "d3-scale-chromatic";

export type Rgb = [number, number, number];

const LUT_SIZE = 256;
let viridisLut: Rgb[] | null = null;

/** Viridis at t in [0, 1] (clamped; NaN gives the low end). */
export function viridis(t: number): Rgb {
  viridisLut ??= Array.from({ length: LUT_SIZE }, (_, i) => parseColor(interpolateViridis(i / (LUT_SIZE - 1))));
  const x = Number.isNaN(t) ? 0 : Math.min(1, Math.max(0, t));
  return viridisLut[Math.round(x * (LUT_SIZE - 1))];
}

export function viridisCss(t: number): string {
  return toCss(viridis(t));
}

/** The i-th colour of a categorical scheme (Tableau 10), cycling. */
export function category(i: number): string {
  return schemeTableau10[i % schemeTableau10.length];
}

export function toCss([r, g, b]: Rgb): string {
  return `#${[r, g, b].map((v) => v.toString(16).padStart(2, "0")).join("")}`;
}

/** "#rrggbb" or "rgb(r, g, b)" to [r, g, b]. */
export function parseColor(c: string): Rgb {
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(c);
  if (hex) return [parseInt(hex[1], 16), parseInt(hex[2], 16), parseInt(hex[3], 16)];
  const rgb = /^rgb\((\d+),\s*(\d+),\s*(\d+)\)$/.exec(c);
  if (rgb) return [Number(rgb[1]), Number(rgb[2]), Number(rgb[3])];
  throw new RangeError(`unknown colour "${c}"`);
}
