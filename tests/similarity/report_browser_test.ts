/**
 * The HTML report in a real browser: headless Chromium (Debian's `chromium` package; .ci/run
 * installs it) loads report.html from disk with networking off, runs its script and takes a
 * screenshot. Ignored where no Chromium is installed (set FORA_CHROMIUM to point at one).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readPng } from "../../lib/io/png.ts";
import { runFora } from "../cli/run.ts";
import { distinctPixels, freshDir, tinyBundle } from "./helpers.ts";

function findChromium(): string | null {
  const env = Deno.env.get("FORA_CHROMIUM");
  if (env) return env;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    for (const name of ["chromium", "chromium-browser"]) {
      try {
        if (Deno.statSync(join(dir, name)).isFile) return join(dir, name);
      } catch { /* not here */ }
    }
  }
  return null;
}

const CHROMIUM = findChromium();

async function chromium(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const profile = await freshDir("chromium-profile");
  const { code, stdout, stderr } = await new Deno.Command(CHROMIUM!, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const dec = new TextDecoder();
  return { code, stdout: dec.decode(stdout), stderr: dec.decode(stderr) };
}

Deno.test({
  name: "the similarity report renders in headless Chromium with every image decoded",
  ignore: CHROMIUM === null,
  async fn() {
    const dir = await freshDir("report");
    const out = join(dir, "sim");
    const r = await runFora("similarity", "-m", await tinyBundle(), "--steps", "8", "-o", out, "--suggest-schedule", join(dir, "s.json"));
    assert.equal(r.code, 0, r.stderr);
    const url = new URL(`file://${join(out, "report.html")}`).href;

    const dom = await chromium(["--virtual-time-budget=10000", "--dump-dom", url]);
    assert.equal(dom.code, 0, dom.stderr);
    // 4 heatmaps, the consecutive-step plot and the sample: all decoded by the browser.
    assert.match(dom.stdout, /<html lang="en" data-images-loaded="6\/6">/);
    assert.match(dom.stdout, /Feature similarity across steps/);
    assert.match(dom.stdout, /class="strip"/, "the suggested schedule is shown");

    const shot = join(dir, "report.png");
    const s = await chromium(["--window-size=1280,1600", "--hide-scrollbars", `--screenshot=${shot}`, url]);
    assert.equal(s.code, 0, s.stderr);
    const png = await readPng(shot);
    assert.deepEqual([png.width, png.height], [1280, 1600]);
    assert.ok(distinctPixels(png.data, png.channels) > 500, "the page shows pictures, not only text on white");
  },
});
