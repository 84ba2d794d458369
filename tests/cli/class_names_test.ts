/** Class names from the model's config reach the manifest, `--class NAME` and image events. */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { convertBundle } from "../../lib/bundle/convert.ts";
import { copyTree, PIXEL_ORIGINAL, withTempDir } from "../bundle/helpers.ts";
import { lines, runFora } from "./run.ts";

const NAMES = ["circle", "square", "triangle", "star", "moon"];

Deno.test("class names: convert records them, --class accepts them case-insensitively, image events name them", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await copyTree(PIXEL_ORIGINAL, src);
    const config = JSON.parse(await Deno.readTextFile(join(src, "config.json")));
    await Deno.writeTextFile(join(src, "config.json"), JSON.stringify({ ...config, space: "pixel", class_names: NAMES }));
    const { manifest } = await convertBundle(src, join(dir, "bundle"), { precisions: ["fp32"] });
    assert.deepEqual(manifest.dit.classNames, NAMES);

    const r = await runFora(
      "generate",
      "-m",
      join(dir, "bundle"),
      "--class",
      "Star",
      "--class",
      "1",
      "--steps",
      "4",
      "--json",
      "-o",
      join(dir, "out"),
    );
    assert.equal(r.code, 0, r.stderr);
    const images = lines(r.stdout).map((l) => JSON.parse(l)).filter((e) => e.event === "image");
    assert.deepEqual(images.map((e) => [e.class, e.class_name]), [[3, "star"], [1, "square"]]);

    const bad = await runFora("generate", "-m", join(dir, "bundle"), "--class", "hexagon", "--steps", "4", "-o", join(dir, "out2"));
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /"hexagon" is not a class of this model; use 0..4 or one of: circle, square, triangle, star, moon/);
  });
});

Deno.test("class names: a config whose class_names do not match num_classes is refused", async () => {
  await withTempDir(async (dir) => {
    const src = join(dir, "src");
    await copyTree(PIXEL_ORIGINAL, src);
    const config = JSON.parse(await Deno.readTextFile(join(src, "config.json")));
    await Deno.writeTextFile(join(src, "config.json"), JSON.stringify({ ...config, class_names: ["a", "b"] }));
    await assert.rejects(convertBundle(src, join(dir, "bundle")), /"class_names" must list 5 non-empty names/);
  });
});
