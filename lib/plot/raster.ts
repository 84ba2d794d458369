/**
 * SVG to PNG with resvg (its WebAssembly build, shipped inside the @resvg/resvg-wasm
 * package: nothing native, nothing downloaded) and the DejaVu Sans font from the
 * dejavu-fonts-ttf package, so text renders the same on every machine with no system
 * fonts involved.
 */
import { createRequire } from "node:module";
import { initWasm, Resvg } from "@resvg/resvg-wasm";
import { ForaError } from "../errors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { FONT_FAMILY } from "./svg.ts";

let ready: Promise<Uint8Array[]> | null = null;

function init(): Promise<Uint8Array[]> {
  ready ??= (async () => {
    const require = createRequire(import.meta.url);
    try {
      await initWasm(await Deno.readFile(require.resolve("@resvg/resvg-wasm/index_bg.wasm")));
      return [
        await Deno.readFile(require.resolve("dejavu-fonts-ttf/ttf/DejaVuSans.ttf")),
        await Deno.readFile(require.resolve("dejavu-fonts-ttf/ttf/DejaVuSans-Bold.ttf")),
      ];
    } catch (e) {
      ready = null;
      throw new ForaError("runtime", `cannot load the SVG renderer or its font: ${(e as Error).message}`);
    }
  })();
  return ready;
}

/** Renders an SVG document to PNG bytes (RGBA, opaque when the SVG paints a background). */
export async function svgToPng(svg: string): Promise<Uint8Array> {
  const fontBuffers = await init();
  const r = new Resvg(svg, {
    font: { fontBuffers, defaultFontFamily: FONT_FAMILY, sansSerifFamily: FONT_FAMILY, loadSystemFonts: false },
  });
  try {
    const img = r.render();
    try {
      return img.asPng();
    } finally {
      img.free();
    }
  } finally {
    r.free();
  }
}

/** Renders `svg` and writes it to `path` atomically. */
export async function writeSvgAsPng(path: string, svg: string): Promise<void> {
  await writeFileAtomic(path, [await svgToPng(svg)], "PNG image");
}
