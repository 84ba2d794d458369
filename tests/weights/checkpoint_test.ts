import assert from "node:assert/strict";
import { join } from "node:path";
import { loadCheckpoint, requireTensor } from "../../lib/weights/checkpoint.ts";
import { readTensorF32, writeSafetensors } from "../../lib/weights/safetensors.ts";
import { assertWeightsError, withTempDir, writeRawSafetensors } from "./helpers.ts";

const f32 = (...values: number[]) => ({
  dtype: "F32" as const,
  shape: [values.length],
  data: new Float32Array(values),
});

async function writeIndex(
  path: string,
  weightMap: Record<string, string>,
): Promise<void> {
  await Deno.writeTextFile(
    path,
    JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }),
  );
}

/** Two shards the way diffusers names them, plus their index. */
async function writeShardedCheckpoint(dir: string): Promise<string> {
  await writeSafetensors(
    join(dir, "diffusion_pytorch_model-00001-of-00002.safetensors"),
    {
      "blocks.0.weight": f32(1, 2),
      "blocks.0.bias": f32(3),
    },
  );
  await writeSafetensors(
    join(dir, "diffusion_pytorch_model-00002-of-00002.safetensors"),
    {
      "blocks.1.weight": f32(4, 5, 6),
    },
  );
  const index = join(dir, "diffusion_pytorch_model.safetensors.index.json");
  await writeIndex(index, {
    "blocks.0.weight": "diffusion_pytorch_model-00001-of-00002.safetensors",
    "blocks.0.bias": "diffusion_pytorch_model-00001-of-00002.safetensors",
    "blocks.1.weight": "diffusion_pytorch_model-00002-of-00002.safetensors",
  });
  return index;
}

Deno.test("a single .safetensors file loads as a one-file checkpoint", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "weights.safetensors");
    await writeSafetensors(path, { w: f32(1, 2, 3) });
    const ckpt = await loadCheckpoint(path);
    assert.equal(ckpt.dir, dir);
    assert.deepEqual(ckpt.files, [path]);
    assert.deepEqual(
      Array.from(await readTensorF32(requireTensor(ckpt, "w", [3]))),
      [1, 2, 3],
    );
  });
});

Deno.test("a folder loads its model.safetensors or diffusion_pytorch_model.safetensors", async () => {
  await withTempDir(async (dir) => {
    for (
      const name of ["model.safetensors", "diffusion_pytorch_model.safetensors"]
    ) {
      const folder = await Deno.makeTempDir({ dir });
      await writeSafetensors(join(folder, name), { w: f32(7) });
      const ckpt = await loadCheckpoint(folder);
      assert.equal(ckpt.dir, folder);
      assert.deepEqual(ckpt.files, [join(folder, name)]);
      assert.deepEqual([...ckpt.tensors.keys()], ["w"]);
    }
  });
});

Deno.test("a folder holding both single-file names is ambiguous", async () => {
  await withTempDir(async (dir) => {
    await writeSafetensors(join(dir, "model.safetensors"), { w: f32(1) });
    await writeSafetensors(join(dir, "diffusion_pytorch_model.safetensors"), {
      w: f32(1),
    });
    await assertWeightsError(() => loadCheckpoint(dir), dir, "holds both");
  });
});

Deno.test("a sharded checkpoint loads from its index file or from its folder", async () => {
  await withTempDir(async (dir) => {
    const index = await writeShardedCheckpoint(dir);
    for (const path of [index, dir]) {
      const ckpt = await loadCheckpoint(path);
      assert.equal(ckpt.dir, dir);
      assert.deepEqual(ckpt.files, [
        join(dir, "diffusion_pytorch_model-00001-of-00002.safetensors"),
        join(dir, "diffusion_pytorch_model-00002-of-00002.safetensors"),
      ]);
      assert.deepEqual([...ckpt.tensors.keys()].sort(), [
        "blocks.0.bias",
        "blocks.0.weight",
        "blocks.1.weight",
      ]);
      const ref = requireTensor(ckpt, "blocks.1.weight", [3]);
      assert.equal(
        ref.file,
        join(dir, "diffusion_pytorch_model-00002-of-00002.safetensors"),
      );
      assert.deepEqual(Array.from(await readTensorF32(ref)), [4, 5, 6]);
    }
  });
});

Deno.test("an index naming a tensor its shard does not hold is rejected", async () => {
  await withTempDir(async (dir) => {
    const index = await writeShardedCheckpoint(dir);
    await writeIndex(index, {
      "blocks.0.weight": "diffusion_pytorch_model-00001-of-00002.safetensors",
      "blocks.1.weight": "diffusion_pytorch_model-00001-of-00002.safetensors",
    });
    await assertWeightsError(
      () => loadCheckpoint(index),
      index,
      `tensor "blocks.1.weight" in diffusion_pytorch_model-00001-of-00002.safetensors`,
      "does not hold it",
    );
  });
});

Deno.test("a tensor stored in two shards is rejected", async () => {
  await withTempDir(async (dir) => {
    const index = await writeShardedCheckpoint(dir);
    await writeSafetensors(
      join(dir, "diffusion_pytorch_model-00002-of-00002.safetensors"),
      {
        "blocks.1.weight": f32(4, 5, 6),
        "blocks.0.bias": f32(3),
      },
    );
    await assertWeightsError(
      () => loadCheckpoint(index),
      index,
      `tensor "blocks.0.bias" appears in both diffusion_pytorch_model-00001-of-00002.safetensors and diffusion_pytorch_model-00002-of-00002.safetensors`,
    );
  });
});

Deno.test("shard names that could leave the index's folder are refused", async () => {
  await withTempDir(async (dir) => {
    const index = join(dir, "model.safetensors.index.json");
    for (
      const shard of [
        "../outside.safetensors",
        "sub/model.safetensors",
        "..",
        "a\\b.safetensors",
        "",
      ]
    ) {
      await writeIndex(index, { w: shard });
      await assertWeightsError(
        () => loadCheckpoint(index),
        index,
        `tensor "w"`,
        "not a plain file name",
      );
    }
  });
});

Deno.test("an index without a weight_map object is rejected", async () => {
  await withTempDir(async (dir) => {
    const index = join(dir, "model.safetensors.index.json");
    await Deno.writeTextFile(index, JSON.stringify({ metadata: {} }));
    await assertWeightsError(
      () => loadCheckpoint(index),
      index,
      `no "weight_map" object`,
    );
    await Deno.writeTextFile(index, "{");
    await assertWeightsError(
      () => loadCheckpoint(index),
      index,
      "not valid JSON",
    );
  });
});

Deno.test("a shard the index names but the folder lacks is reported by path", async () => {
  await withTempDir(async (dir) => {
    const index = join(dir, "model.safetensors.index.json");
    await writeIndex(index, { w: "model-00001-of-00001.safetensors" });
    await assertWeightsError(
      () => loadCheckpoint(index),
      join(dir, "model-00001-of-00001.safetensors"),
      "no such file",
    );
  });
});

Deno.test("a folder with several indexes is ambiguous", async () => {
  await withTempDir(async (dir) => {
    await writeIndex(join(dir, "a.safetensors.index.json"), {});
    await writeIndex(join(dir, "b.safetensors.index.json"), {});
    await assertWeightsError(
      () => loadCheckpoint(dir),
      dir,
      "several safetensors indexes",
    );
  });
});

Deno.test("a .pt file, a folder of .bin files or a .bin index gets the pickled-checkpoint error", async () => {
  await withTempDir(async (dir) => {
    const pt = join(dir, "model.pt");
    await Deno.writeFile(pt, new Uint8Array(16));
    await assertWeightsError(
      () => loadCheckpoint(pt),
      pt,
      "pickled PyTorch checkpoints are not supported",
      "save_file",
    );

    const binFolder = await Deno.makeTempDir({ dir });
    await Deno.writeFile(
      join(binFolder, "pytorch_model.bin"),
      new Uint8Array(16),
    );
    await assertWeightsError(
      () => loadCheckpoint(binFolder),
      join(binFolder, "pytorch_model.bin"),
      "pickled",
    );

    const binIndex = join(dir, "pytorch_model.bin.index.json");
    await writeIndex(binIndex, { w: "pytorch_model-00001-of-00002.bin" });
    await assertWeightsError(
      () => loadCheckpoint(binIndex),
      binIndex,
      "pickled",
    );
  });
});

Deno.test("a folder without weights says what it looked for and points at a diffusers transformer folder", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(join(dir, "transformer"));
    await assertWeightsError(
      () => loadCheckpoint(dir),
      dir,
      "no model.safetensors, diffusion_pytorch_model.safetensors or *.safetensors.index.json",
      `try ${join(dir, "transformer")}`,
    );
    await writeSafetensors(join(dir, "dit_xl_2.safetensors"), { w: f32(1) });
    await assertWeightsError(
      () => loadCheckpoint(dir),
      "pass that file directly",
    );
  });
});

Deno.test("a missing path is a ForaError naming it", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "nowhere");
    await assertWeightsError(
      () => loadCheckpoint(path),
      path,
      "no such file or folder",
    );
  });
});

Deno.test("requireTensor names the checkpoint folder and the missing tensor, suggesting near names", async () => {
  await withTempDir(async (dir) => {
    await writeSafetensors(join(dir, "model.safetensors"), {
      "model.diffusion_model.blocks.0.attn.qkv.weight": f32(1),
    });
    const ckpt = await loadCheckpoint(dir);
    await assertWeightsError(
      () => requireTensor(ckpt, "blocks.0.attn.qkv.weight"),
      `${dir}: checkpoint has no tensor "blocks.0.attn.qkv.weight"`,
      `similar names: "model.diffusion_model.blocks.0.attn.qkv.weight"`,
    );
    await assertWeightsError(
      () => requireTensor(ckpt, "pos_embed"),
      dir,
      `"pos_embed"`,
      "it holds 1 tensors",
    );
  });
});

Deno.test("requireTensor reports expected and found shapes on mismatch", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "model.safetensors");
    await writeRawSafetensors(path, {
      "x_embedder.proj.weight": {
        dtype: "F32",
        shape: [2, 3],
        data_offsets: [0, 24],
      },
    }, new Uint8Array(24));
    const ckpt = await loadCheckpoint(dir);
    await assertWeightsError(
      () => requireTensor(ckpt, "x_embedder.proj.weight", [3, 2]),
      `${dir}: tensor "x_embedder.proj.weight" in model.safetensors has shape [2, 3], expected [3, 2]`,
    );
    assert.deepEqual(
      requireTensor(ckpt, "x_embedder.proj.weight", [2, 3]).shape,
      [2, 3],
    );
  });
});
