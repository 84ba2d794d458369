/**
 * Fuzz targets: the restricted unpickler (lib/weights/pickle.ts) and the zip reader behind
 * PyTorch checkpoints (lib/weights/zip.ts, lib/weights/torch.ts), on input from anywhere.
 *
 * Unpickler cases: random opcode streams built from every opcode with plausible and hostile
 * arguments, byte-level mutations of the data.pkl of real torch.save files, random bytes.
 * Zip cases: mutations of real torch.save files, and archives written byte by byte with
 * hostile names, methods, flags, sizes and header offsets. A value that passes must be well
 * formed (tensors inside their storages, entries inside the file and apart); anything else
 * must be a one-line ForaError("weights").
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import fc from "fast-check";
import { FIXTURES } from "../bundle/helpers.ts";
import { ForaError } from "../../lib/errors.ts";
import { isKind, type PyValue, type Storage, unpickle } from "../../lib/weights/pickle.ts";
import { readTorchCheckpoint, readTorchTensor, tensorBytes, type TorchCheckpoint } from "../../lib/weights/torch.ts";
import { readEntry, readZipDirectory } from "../../lib/weights/zip.ts";
import { buildZip, type RawEntry } from "../weights/zip_helpers.ts";
import { attempt, fuzz, mutated, scratchFile, show } from "./fuzz.ts";

const TORCH = join(FIXTURES, "torch");

async function dataPkl(file: string): Promise<Uint8Array> {
  const zip = await readZipDirectory(join(TORCH, file));
  const name = [...zip.entries.keys()].find((n) => n.endsWith("/data.pkl"))!;
  return await readEntry(zip, zip.entries.get(name)!);
}

const validPickles = [await dataPkl("dit-tiny-train.pt"), await dataPkl("dtypes.pt")];

/** One opcode with arguments; strings pick names the unpickler must accept or refuse. */
const GLOBALS = [
  "collections\nOrderedDict\n",
  "torch._utils\n_rebuild_tensor_v2\n",
  "torch._utils\n_rebuild_parameter\n",
  "torch\nFloatStorage\n",
  "torch\nHalfStorage\n",
  "torch\nUntypedStorage\n",
  "argparse\nNamespace\n",
  "_codecs\nencode\n",
  "os\nsystem\n",
  "builtins\neval\n",
  "torch\nload\n",
];
const enc = new TextEncoder();
const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
const token: fc.Arbitrary<number[]> = fc.oneof(
  fc.constantFrom<number[]>(
    [0x28],
    [0x29],
    [0x5d],
    [0x7d],
    [0x4e],
    [0x88],
    [0x89],
    [0x30],
    [0x31],
    [0x32],
    [0x74],
    [0x85],
    [0x86],
    [0x87],
    [0x61],
    [0x65],
    [0x73],
    [0x75],
    [0x52],
    [0x62],
    [0x81],
    [0x92],
    [0x51],
    [0x93],
    [0x94],
    [0x6c],
    [0x64],
    [0x6f],
    [0x8f],
    [0x2e],
  ),
  fc.integer({ min: 0, max: 255 }).map((n) => [0x4b, n]),
  fc.integer({ min: 0, max: 8 }).map((n) => [0x68, n]),
  fc.integer({ min: 0, max: 8 }).map((n) => [0x71, n]),
  fc.integer({ min: -1, max: 300 }).map((n) => [0x4a, ...u32(n)]),
  fc.uint8Array({ maxLength: 10 }).map((b) => [0x8a, b.length, ...b]),
  fc.constantFrom("storage", "0", "1", "cpu", "latin1", "x").map((s) => [0x8c, s.length, ...enc.encode(s)]),
  fc.string({ maxLength: 6 }).map((s) => [0x58, ...u32(enc.encode(s).length), ...enc.encode(s)]),
  fc.constantFrom(...GLOBALS).map((g) => [0x63, ...enc.encode(g)]),
  fc.integer({ min: 0, max: 2 ** 32 - 1 }).map((n) => [0x58, ...u32(n)]),
  fc.uint8Array({ maxLength: 3 }).map((b) => Array.from(b)),
);
const opcodeStream = fc.tuple(fc.integer({ min: 2, max: 5 }), fc.array(token, { maxLength: 40 })).map(([proto, tokens]) =>
  new Uint8Array([0x80, proto, ...tokens.flat(), 0x2e])
);

const STORAGE_SIZE = 16;
/** Storages "0".."3" exist with 16 elements; other keys do not. */
function checkStorage(s: Storage): void {
  if (!/^[0-3]$/.test(s.key) || s.numel > STORAGE_SIZE) throw new ForaError("weights", `x.pt: no storage ${JSON.stringify(s.key)}`);
}

/** Every tensor reachable from `v` lies inside its storage (visited once each, however shared or cyclic). */
function checkTensors(v: PyValue, seen = new Set<object>()): void {
  if (typeof v !== "object" || v === null || v instanceof Uint8Array || seen.has(v)) return;
  seen.add(v);
  if (isKind(v, "tensor")) {
    const count = v.shape.reduce((n, d) => n * d, 1);
    if (count > 0) {
      const last = v.shape.reduce((n, d, i) => n + (d - 1) * v.stride[i], v.storageOffset);
      assert.ok(last < v.storage.numel, `tensor reaches element ${last} of ${v.storage.numel}`);
    }
    return;
  }
  const children = isKind(v, "list") || isKind(v, "tuple")
    ? v.items
    : isKind(v, "dict")
    ? [...v.entries.values()]
    : isKind(v, "namespace")
    ? [...v.fields.values()]
    : [];
  for (const c of children) checkTensors(c, seen);
}

Deno.test("fuzz: the unpickler builds only plain values and in-bounds tensors, or refuses with one typed line", async () => {
  const cases = fc.oneof(
    { arbitrary: opcodeStream, weight: 5 },
    { arbitrary: fc.constantFrom(...validPickles).chain((p) => mutated(p)), weight: 4 },
    { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 1 },
  );
  await fuzz(cases, (bytes) => {
    const r = attemptSync(() => unpickle(bytes, { file: "x.pt", checkStorage }), () => show(bytes));
    if (!r.ok) return "rejected";
    checkTensors(r.value);
    return "accepted";
  });
});

function attemptSync<T>(read: () => T, input: () => string): { ok: true; value: T } | { ok: false } {
  try {
    return { ok: true, value: read() };
  } catch (e) {
    // Same rule as every reader: a typed one-line error (attempt() is async; this target is not).
    if (!(e instanceof ForaError)) assert.fail(`not a ForaError: ${e instanceof Error ? e.stack : String(e)}\ninput: ${input()}`);
    assert.equal(e.code, "weights", e.message);
    // deno-lint-ignore no-control-regex
    assert.doesNotMatch(e.message, /[\u0000-\u001f]/, `not one printable line: ${JSON.stringify(e.message)}`);
    return { ok: false };
  }
}

const names = fc.oneof(
  fc.constantFrom("archive/data.pkl", "archive/data/0", "archive/version", "archive/byteorder", "../x", "/abs", "a/../b", "archive/"),
  fc.string({ maxLength: 12 }),
);
const rawEntry: fc.Arbitrary<RawEntry> = fc.record({
  name: names,
  data: fc.oneof(fc.constantFrom(...validPickles.map((p) => p.subarray(0, 64))), fc.uint8Array({ maxLength: 40 })),
  method: fc.constantFrom(0, 0, 0, 8, 12),
  flags: fc.constantFrom(0, 0, 1, 8, 0x800),
  declaredSize: fc.option(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { nil: undefined }),
  zip64: fc.boolean(),
  headerAt: fc.option(fc.integer({ min: 0, max: 400 }), { nil: undefined }),
}, { requiredKeys: ["name", "data"] });
const structuredZip = fc.tuple(fc.array(rawEntry, { maxLength: 5 }), fc.boolean()).map(([entries, zip64End]) =>
  buildZip(entries, { zip64End })
);

Deno.test("fuzz: the zip reader returns entries inside the file and apart, or refuses with one typed line", async () => {
  const scratch = await scratchFile("x.pt");
  const validZips = [
    await Deno.readFile(join(TORCH, "dtypes.pt")),
    await Deno.readFile(join(TORCH, "hostile", "offset-beyond-storage.pt")),
  ];
  const cases = fc.oneof(
    { arbitrary: fc.constantFrom(...validZips).chain((z) => mutated(z)), weight: 5 },
    { arbitrary: structuredZip, weight: 4 },
    { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 1 },
  );
  try {
    await fuzz(cases, async (bytes) => {
      scratch.write(bytes);
      const zip = await attempt(() => readZipDirectory(scratch.path), ["weights"], () => show(bytes));
      if (!zip.ok) return "rejected";
      const spans = [...zip.value.entries.values()].sort((a, b) => a.offset - b.offset);
      for (const [i, e] of spans.entries()) {
        assert.ok(e.offset >= 0 && e.offset + e.size <= bytes.length, `${e.name} inside the file`);
        if (i > 0) assert.ok(spans[i - 1].offset + spans[i - 1].size <= e.offset, `${e.name} apart from the previous entry`);
        assert.ok(!e.name.startsWith("/") && !e.name.split("/").includes(".."), `${e.name} stays inside`);
      }
      const ckpt: { ok: true; value: TorchCheckpoint } | { ok: false } = await attempt(
        () => readTorchCheckpoint(scratch.path),
        ["weights"],
        () => show(bytes),
      );
      if (!ckpt.ok) return "rejected";
      checkTensors(ckpt.value.root);
      if (isKind(ckpt.value.root, "dict")) {
        for (const [k, t] of ckpt.value.root.entries) {
          if (!isKind(t, "tensor")) continue;
          const ref: TorchCheckpoint = ckpt.value;
          const read: { ok: true; value: Uint8Array } | { ok: false } = await attempt(
            () => readTorchTensor(ref, t, String(k)),
            ["weights"],
            () => show(bytes),
          );
          if (read.ok) assert.equal(read.value.length, tensorBytes(t));
        }
      }
      return "accepted";
    });
  } finally {
    await scratch.cleanup();
  }
});
