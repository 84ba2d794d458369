/**
 * Fuzz target: the bundle manifest loader (lib/bundle/manifest.ts). Cases: a real bundle's
 * manifest with values replaced at random places of its tree (any JSON, numbers that break
 * size arithmetic, paths that try to leave the folder) or keys deleted, checked by
 * checkManifest; arbitrary JSON; and the manifest's text with byte-level mutations, loaded
 * from disk by readManifest. An accepted manifest must name only plain relative paths that
 * stay inside the bundle folder, and its graphs must be files it lists; anything else must be
 * a one-line ForaError("bundle").
 */
import assert from "node:assert/strict";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import fc from "fast-check";
import { convertBundle } from "../../lib/bundle/convert.ts";
import { checkManifest } from "../../lib/bundle/check.ts";
import { type Manifest, MANIFEST_FILE } from "../../lib/bundle/manifest.ts";
import { readManifest } from "../../lib/bundle/read.ts";
import { TINY_DIFFUSERS } from "../bundle/helpers.ts";
import { attempt, fuzz, hostilePath, mutated, mutatedJson, scratchFile, show } from "./fuzz.ts";

const scratch = await scratchFile("unused");
const bundle = join(scratch.path, "..", "bundle");
await convertBundle(TINY_DIFFUSERS, bundle, { precisions: ["fp32"], copyWeights: true });
const validText = await Deno.readFile(join(bundle, MANIFEST_FILE));
const valid = JSON.parse(new TextDecoder().decode(validText));

function checkAccepted(m: Manifest): void {
  const root = resolve(bundle);
  const listed = new Set(m.files.map((f) => f.path));
  for (const f of m.files) {
    const rel = relative(root, resolve(root, f.path));
    // ".. " or "..x" are ordinary names inside the bundle; only a first component of exactly ".." leaves it.
    assert.ok(rel !== "" && rel.split(sep)[0] !== ".." && !isAbsolute(rel), `${JSON.stringify(f.path)} stays inside the bundle`);
    assert.ok(!/[\\\0]/.test(f.path) && !f.path.split("/").some((s) => s === "" || s === "." || s === ".."), f.path);
    assert.ok(Number.isSafeInteger(f.size) && f.size >= 0);
  }
  for (const g of m.dit.graphs) assert.ok(listed.has(g.file), g.file);
  for (const g of m.vae?.graphs ?? []) assert.ok(listed.has(g.file), g.file);
  for (const w of [...m.dit.weights.files, ...(m.vae?.weights.files ?? [])]) assert.ok(listed.has(w), w);
}

/** One listed file renamed (its graph or weight reference too, or not): a hostile path in an otherwise valid manifest. */
const renamed = fc.record({ pick: fc.nat(), path: hostilePath, follow: fc.boolean() }).map(({ pick, path, follow }) => {
  const m = structuredClone(valid);
  const f = m.files[pick % m.files.length];
  const old = f.path;
  f.path = path;
  if (follow) {
    const text = JSON.stringify(m).replaceAll(JSON.stringify(old), () => JSON.stringify(path));
    return JSON.parse(text);
  }
  return m;
});

type Case = { kind: "json"; json: unknown } | { kind: "text"; bytes: Uint8Array };
const cases: fc.Arbitrary<Case> = fc.oneof(
  { arbitrary: mutatedJson(valid).map((json): Case => ({ kind: "json", json })), weight: 4 },
  { arbitrary: renamed.map((json): Case => ({ kind: "json", json })), weight: 2 },
  { arbitrary: fc.jsonValue({ maxDepth: 3 }).map((json): Case => ({ kind: "json", json })), weight: 1 },
  { arbitrary: mutated(validText).map((bytes): Case => ({ kind: "text", bytes })), weight: 2 },
);

Deno.test("fuzz: the bundle manifest loader accepts only manifests whose paths stay inside the bundle, else a typed one-line error", async () => {
  try {
    await fuzz(cases, async (c) => {
      if (c.kind === "json") {
        const r = await attempt(() => checkManifest(c.json, "manifest.json"), ["bundle"], () => JSON.stringify(c.json));
        if (!r.ok) return "rejected";
        checkAccepted(r.value);
        return "accepted";
      }
      Deno.writeFileSync(join(bundle, MANIFEST_FILE), c.bytes);
      const r = await attempt(() => readManifest(bundle), ["bundle"], () => show(c.bytes));
      if (!r.ok) return "rejected";
      checkAccepted(r.value);
      for (const f of r.value.files) assert.equal((await Deno.stat(join(bundle, f.path))).size, f.size);
      return "accepted";
    });
  } finally {
    await scratch.cleanup();
  }
});
