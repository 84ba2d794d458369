/**
 * PNG files, through fast-png (the image-js project's PNG codec). Writes 8-bit gray
 * or RGB, atomically (atomic.ts). Reads 8- and 16-bit gray and RGB, palette images,
 * and images with an alpha channel that is fully opaque; returns 8-bit gray or RGB.
 */
// Pinned inline until the import map lists it as "fast-png": "fast-png".
import * as fastPng from "fast-png";
import { ForaError } from "../errors.ts";
import { reasonOf, writeFileAtomic } from "./atomic.ts";
import type { Image } from "./image.ts";

export type { Image } from "./image.ts";

export async function writePng(path: string, image: Image): Promise<void> {
  const { width, height, channels, data } = image;
  if (
    !Number.isInteger(width) || width <= 0 || !Number.isInteger(height) ||
    height <= 0
  ) {
    throw new RangeError(`writePng: bad size ${width}x${height}`);
  }
  if (channels !== 1 && channels !== 3) {
    throw new RangeError(`writePng: ${channels} channels; expected 1 or 3`);
  }
  if (data.length !== width * height * channels) {
    throw new RangeError(
      `writePng: ${data.length} bytes for ${width}x${height}x${channels}`,
    );
  }
  const bytes = fastPng.encode({ width, height, channels, depth: 8, data });
  await writeFileAtomic(path, [bytes], "PNG image");
}

export async function readPng(path: string): Promise<Image> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new ForaError(
      "io",
      `${path}: could not read PNG image: ${e instanceof Deno.errors.NotFound ? "no such file" : reasonOf(e)}`,
    );
  }
  let png: fastPng.DecodedPng;
  try {
    png = fastPng.decode(bytes, { checkCrc: true });
  } catch (e) {
    throw new ForaError(
      "io",
      `${path}: not a readable PNG image (${e instanceof Error ? e.message : String(e)})`,
    );
  }
  return to8BitGrayOrRgb(path, png);
}

function to8BitGrayOrRgb(path: string, png: fastPng.DecodedPng): Image {
  const { width, height } = png;
  let channels = png.channels;
  let data: Uint8Array;
  if (png.palette) {
    data = fastPng.convertIndexedToRgb(png);
    channels = png.palette[0]?.length ?? 3;
  } else if (png.depth === 8) {
    data = png.data instanceof Uint8Array ? png.data : new Uint8Array(png.data);
  } else if (png.depth === 16) {
    data = Uint8Array.from(png.data, (v) => Math.round(v / 257));
  } else {
    fail(
      path,
      `${png.depth}-bit images are not supported; save it as an 8-bit PNG`,
    );
  }
  if (channels === 2 || channels === 4) {
    const color = channels - 1;
    const opaque = new Uint8Array(width * height * color);
    for (let p = 0; p < width * height; p++) {
      if (data[p * channels + color] !== 255) {
        fail(
          path,
          "has transparent pixels; fora reads opaque gray or RGB images",
        );
      }
      for (let c = 0; c < color; c++) {
        opaque[p * color + c] = data[p * channels + c];
      }
    }
    data = opaque;
    channels = color;
  }
  if (channels !== 1 && channels !== 3) {
    fail(path, `has ${channels} channels; expected gray or RGB`);
  }
  if (data.length !== width * height * channels) {
    fail(path, "pixel data does not match the image size");
  }
  return { width, height, channels, data };
}

function fail(path: string, message: string): never {
  throw new ForaError("io", `${path}: ${message}`);
}
