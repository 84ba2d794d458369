/**
 * A few SVG helpers for fora's charts. Charts are built as SVG text (readable, testable,
 * embeddable in the HTML report) and rasterised to PNG by raster.ts.
 */

/** The one font every chart uses; raster.ts loads it from the dejavu-fonts-ttf package. */
export const FONT_FAMILY = "DejaVu Sans";

export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

export function svgDocument(width: number, height: number, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="${FONT_FAMILY}" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    ...body,
    `</svg>`,
  ].join("\n");
}

export interface TextOptions {
  size?: number;
  anchor?: "start" | "middle" | "end";
  weight?: "normal" | "bold";
  /** Degrees, about (x, y). */
  rotate?: number;
  fill?: string;
  baseline?: "auto" | "middle" | "hanging";
}

export function text(x: number, y: number, s: string, o: TextOptions = {}): string {
  const attrs = [
    `x="${n(x)}"`,
    `y="${n(y)}"`,
    o.size ? `font-size="${o.size}"` : "",
    o.anchor && o.anchor !== "start" ? `text-anchor="${o.anchor}"` : "",
    o.weight === "bold" ? `font-weight="bold"` : "",
    o.rotate ? `transform="rotate(${o.rotate} ${n(x)} ${n(y)})"` : "",
    o.baseline && o.baseline !== "auto" ? `dominant-baseline="${o.baseline === "middle" ? "central" : "hanging"}"` : "",
    `fill="${o.fill ?? "#222222"}"`,
  ].filter(Boolean).join(" ");
  return `<text ${attrs}>${esc(s)}</text>`;
}

export function rect(x: number, y: number, w: number, h: number, fill: string, extra = ""): string {
  return `<rect x="${n(x)}" y="${n(y)}" width="${n(Math.max(w, 0))}" height="${n(Math.max(h, 0))}" fill="${fill}"${
    extra ? " " + extra : ""
  }/>`;
}

export function line(x1: number, y1: number, x2: number, y2: number, stroke = "#444444", width = 1): string {
  return `<line x1="${n(x1)}" y1="${n(y1)}" x2="${n(x2)}" y2="${n(y2)}" stroke="${stroke}" stroke-width="${width}"/>`;
}

export function polyline(points: [number, number][], stroke: string, width = 1.5): string {
  const pts = points.map(([x, y]) => `${n(x)},${n(y)}`).join(" ");
  return `<polyline points="${pts}" fill="none" stroke="${stroke}" stroke-width="${width}" stroke-linejoin="round"/>`;
}

/** A raster image, drawn with nearest-neighbour scaling (one matrix cell = one block of pixels). */
export function pixelImage(x: number, y: number, w: number, h: number, pngBytes: Uint8Array): string {
  return `<image x="${n(x)}" y="${n(y)}" width="${n(w)}" height="${n(h)}" preserveAspectRatio="none" ` +
    `image-rendering="optimizeSpeed" href="data:image/png;base64,${base64(pngBytes)}"/>`;
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(count, 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}

/** Ticks from 0 and an axis top (a tick) at or above `max`. */
export function zeroBasedScale(max: number, count = 5): { ticks: number[]; top: number } {
  const hi = max > 0 ? max : 1;
  const ticks = niceTicks(0, hi, count);
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : hi;
  while (ticks[ticks.length - 1] < hi - 1e-12) ticks.push(Number((ticks[ticks.length - 1] + step).toFixed(10)));
  return { ticks, top: ticks[ticks.length - 1] };
}

/** Integer ticks for step axes 0..last. */
export function stepTicks(last: number, count = 6): number[] {
  if (last <= 0) return [0];
  return niceTicks(0, last, count).filter((v) => Number.isInteger(v));
}

export function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function n(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(2);
}
