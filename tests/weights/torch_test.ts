/**
 * PyTorch checkpoints: the fixtures of tools/reference/make_torch_fixtures.py (written by
 * torch.save) read back to the values PyTorch recorded, and hostile files (pickles that would
 * run code, malformed pickles, hostile zip archives) refused with one line naming the file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FIXTURES } from "../bundle/helpers.ts";
import { isKind, type PyValue, type TorchDType, unpickle } from "../../lib/weights/pickle.ts";
import { isContiguous, readTorchCheckpoint, readTorchTensor } from "../../lib/weights/torch.ts";
import { readTorchStateDict } from "../../lib/bundle/torch_source.ts";
import { bytesToFloat32 } from "../../lib/weights/safetensors.ts";
import { readEntry, readZipDirectory } from "../../lib/weights/zip.ts";
import { assertWeightsError, withTempDir } from "./helpers.ts";
import { buildZip, torchZip } from "./zip_helpers.ts";

const TORCH = join(FIXTURES, "torch");

function decode(bytes: Uint8Array, dtype: TorchDType): number[] {
  const b = bytes.buffer as ArrayBuffer;
  switch (dtype) {
    case "F32":
    case "F16":
    case "BF16":
      return Array.from(bytesToFloat32(bytes, dtype));
    case "F64":
      return Array.from(new Float64Array(b));
    case "I64":
      return Array.from(new BigInt64Array(b), Number);
    case "I32":
      return Array.from(new Int32Array(b));
    case "I16":
      return Array.from(new Int16Array(b));
    case "I8":
      return Array.from(new Int8Array(b));
    case "U8":
    case "BOOL":
      return Array.from(bytes);
  }
}

Deno.test("every storage type and view of a torch.save file reads back to PyTorch's values", async () => {
  const expected = JSON.parse(await Deno.readTextFile(join(TORCH, "dtypes.json")));
  const ckpt = await readTorchCheckpoint(join(TORCH, "dtypes.pt"));
  assert.ok(isKind(ckpt.root, "dict"));
  assert.deepEqual([...ckpt.root.entries.keys()].sort(), Object.keys(expected).sort());
  const dtypes = new Set<string>();
  for (const [name, want] of Object.entries(expected) as [string, { shape: number[]; values: number[]; contiguous: boolean }][]) {
    const t = ckpt.root.entries.get(name);
    assert.ok(isKind(t, "tensor"), name);
    assert.deepEqual(t.shape, want.shape, name);
    assert.equal(isContiguous(t), want.contiguous || want.values.length === 0, name);
    assert.deepEqual(decode(await readTorchTensor(ckpt, t, name), t.dtype), want.values, name);
    dtypes.add(t.dtype);
  }
  assert.deepEqual([...dtypes].sort(), ["BF16", "BOOL", "F16", "F32", "F64", "I16", "I32", "I64", "I8", "U8"]);
});

Deno.test("a training checkpoint: its ema weights are taken, and its argparse.Namespace reads as a plain record", async () => {
  const path = join(TORCH, "dit-tiny-train.pt");
  const sd = await readTorchStateDict(path);
  assert.match(sd.note!, /"ema"/);
  assert.equal(sd.tensors.size, 32);
  assert.equal(sd.tensors.get("x_embedder.proj.weight")!.dtype, "F16");
  assert.ok(!isContiguous(sd.tensors.get("blocks.0.attn.qkv.weight")!), "the fixture's non-contiguous view");
  const root = sd.ckpt.root;
  assert.ok(isKind(root, "dict"));
  const args = root.entries.get("args");
  assert.ok(isKind(args, "namespace"));
  assert.equal(args.fields.get("model"), "DiT-tiny/2");
  assert.equal(args.fields.get("ckpt_every"), 50_000);
  const opt = root.entries.get("opt");
  assert.ok(isKind(opt, "dict"));
  const groups = opt.entries.get("param_groups");
  assert.ok(isKind(groups, "list"));
  const betas = isKind(groups.items[0], "dict") ? groups.items[0].entries.get("betas") : undefined;
  assert.ok(isKind(betas, "tuple"));
  assert.deepEqual(betas.items, [0.9, 0.999]);
});

Deno.test("a plain state dict's tensors are byte ranges of the file's stored entries", async () => {
  const path = join(TORCH, "dit-tiny.pt");
  const sd = await readTorchStateDict(path);
  assert.equal(sd.note, undefined);
  const zip = await readZipDirectory(path);
  const pkl = zip.entries.get("dit-tiny/data.pkl")!;
  assert.equal(new Uint8Array(await Deno.readFile(path)).subarray(pkl.offset, pkl.offset + 2).join(), "128,2");
  assert.deepEqual(await readEntry(zip, pkl, 0, 2), new Uint8Array([0x80, 0x02]));
});

// ---- hostile pickles (fixtures/torch/hostile, written by Python) -------------------------------

const HOSTILE: Record<string, string[]> = {
  "os-system": ["refused", "posix.system", "nothing was run"],
  "os-system-global": ["refused", "os.system"],
  "stack-global-system": ["refused", "os.system"],
  "builtins-eval": ["refused", "builtins.eval"],
  "builtins-exec": ["refused", "builtins.exec"],
  "builtins-import": ["refused", "builtins.__import__"],
  "builtins-getattr": ["refused", "builtins.getattr"],
  "allowed-name-other-module": ["refused", "os.OrderedDict"],
  "allowed-module-other-name": ["refused", "torch._utils._load_from_bytes"],
  "build-on-list": ["refused", "BUILD on a list"],
  "inst": ["refused", "INST", "collections.OrderedDict"],
  "obj": ["refused", "OBJ", "collections.OrderedDict"],
  "newobj": ["refused", "NEWOBJ on collections.OrderedDict"],
  "reduce-storage-class": ["refused", "REDUCE on torch.FloatStorage"],
  "memo-unset": ["memo slot 5 read before it was written"],
  "stack-underflow": ["POP finds no value"],
  "appends-without-mark": ["APPENDS without a MARK"],
  "stop-with-two": ["STOP with 2 values"],
  "deep-nesting": ["more than 100 levels deep"],
  "truncated-pickle": ["pickle ends inside BINUNICODE"],
  "storage-beyond-entry": ['storage "0" declares 200 F32 elements (800 bytes), beyond its 16-byte entry'],
  "offset-beyond-storage": ["reaches beyond its storage"],
};

for (const [name, fragments] of Object.entries(HOSTILE)) {
  Deno.test(`hostile pickle refused: ${name}`, async () => {
    const path = join(TORCH, "hostile", `${name}.pt`);
    await assertWeightsError(() => readTorchCheckpoint(path), path, ...fragments);
  });
}

Deno.test("every hostile fixture is tested", async () => {
  const names: string[] = [];
  for await (const e of Deno.readDir(join(TORCH, "hostile"))) names.push(e.name.replace(/\.pt$/, ""));
  assert.deepEqual(names.sort(), Object.keys(HOSTILE).sort());
});

// ---- the unpickler on hand-written opcodes ---------------------------------------------------

const ok = () => {};
const pickle = (...parts: (string | number[])[]) =>
  new Uint8Array(parts.flatMap((p) => typeof p === "string" ? Array.from(p, (c) => c.charCodeAt(0)) : p));
const run = (bytes: Uint8Array): PyValue => unpickle(bytes, { file: "x.pt", checkStorage: ok });

Deno.test("the unpickler reads protocol 2-5 values: ints of every width, floats, strings, bytes, nested containers", () => {
  const v = run(pickle(
    [0x80, 4, 0x95, 0, 0, 0, 0, 0, 0, 0, 0],
    "}(",
    [0x8c, 1],
    "a",
    "J",
    [0xff, 0xff, 0xff, 0xff],
    [0x8c, 1],
    "b",
    [0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0x80, 0xff],
    [0x8c, 1],
    "c",
    "G",
    [0x3f, 0xf8, 0, 0, 0, 0, 0, 0],
    [0x8c, 1],
    "d",
    "C",
    [2, 1, 2],
    [0x8c, 1],
    "e",
    "]",
    [0x94],
    "K",
    [7],
    "a",
    "h",
    [0],
    "a",
    [0x8c, 1],
    "f",
    [0x88, 0x89, 0x86],
    "u.",
  ));
  assert.ok(isKind(v, "dict"));
  assert.equal(v.entries.get("a"), -1);
  assert.equal(v.entries.get("b"), -(2n ** 63n));
  assert.equal(v.entries.get("c"), 1.5);
  assert.deepEqual(v.entries.get("d"), new Uint8Array([1, 2]));
  const list = v.entries.get("e");
  assert.ok(isKind(list, "list"));
  assert.equal(list.items[0], 7);
  assert.equal(list.items[1], list, "a memo reference to the list itself");
  const pair = v.entries.get("f");
  assert.ok(isKind(pair, "tuple"));
  assert.deepEqual(pair.items, [true, false]);
});

Deno.test("the unpickler reads what Python's own pickler writes at protocol 2 for bytes and argparse.Namespace", () => {
  // pickle.dumps(b"ab\xff", protocol=2) and pickle.dumps(argparse.Namespace(x=1), protocol=2), byte for byte.
  const bytes = run(
    pickle([128, 2], "c_codecs\nencode\nq", [0, 88, 4, 0, 0, 0, 97, 98, 195, 191, 113, 1, 88, 6, 0, 0, 0], "latin1q", [
      2,
      134,
      113,
      3,
      82,
      113,
      4,
      46,
    ]),
  );
  assert.deepEqual(bytes, new Uint8Array([0x61, 0x62, 0xff]));
  const ns = run(
    pickle([128, 2], "cargparse\nNamespace\nq", [0, 41, 129, 113, 1, 125, 113, 2, 88, 1, 0, 0, 0, 120, 113, 3, 75, 1, 115, 98, 46]),
  );
  assert.ok(isKind(ns, "namespace"));
  assert.deepEqual([...ns.fields], [["x", 1]]);
});

Deno.test("allowed names are refused when used otherwise than torch.save uses them", async () => {
  await assertWeightsError(() => run(pickle([0x80, 2], "cargparse\nNamespace\n)R.")), "refused", "REDUCE on argparse.Namespace");
  await assertWeightsError(
    () => run(pickle([0x80, 2], "cargparse\nNamespace\nK", [1], "\x85\x81.")),
    "argparse.Namespace created with arguments",
  );
  await assertWeightsError(() => run(pickle([0x80, 2], "c_codecs\nencode\nK", [1], "\x85R.")), 'encode(str, "latin1")');
  await assertWeightsError(() => run(pickle([0x80, 2], "ccollections\nOrderedDict\nK", [1], "\x85R.")), "called with arguments");
  await assertWeightsError(() => run(pickle([0x80, 2], "ctorch._utils\n_rebuild_tensor_v2\n)R.")), "needs (storage, offset, size, stride");
  await assertWeightsError(() => run(pickle([0x80, 2], "K", [1], "]b.")), "BUILD on a number");
});

Deno.test("the unpickler refuses sets, extension codes, protocol 5 buffers and text opcodes", async () => {
  await assertWeightsError(() => run(pickle([0x80, 4, 0x8f], ".")), "x.pt", "a set");
  await assertWeightsError(() => run(pickle([0x80, 2, 0x82, 1], ".")), "extension registry");
  await assertWeightsError(() => run(pickle([0x80, 5, 0x97], ".")), "out-of-band buffers");
  await assertWeightsError(() => run(pickle([0x80, 2], "I1\n.")), "opcode 0x49");
  await assertWeightsError(() => run(pickle("(lp0\n.")), "not a pickle of protocol 2-5");
  await assertWeightsError(() => run(pickle([0x80, 2], "N")), "ends without its STOP");
});

// ---- hostile zip archives --------------------------------------------------------------------

const PKL = pickle([0x80, 2], "}.");

async function refusedZip(bytes: Uint8Array, ...fragments: string[]): Promise<void> {
  await withTempDir(async (dir) => {
    const path = join(dir, "model.pt");
    await Deno.writeFile(path, bytes);
    await assertWeightsError(() => readTorchCheckpoint(path), path, ...fragments);
  });
}

Deno.test("a valid hand-built archive reads, with and without ZIP64 records", async () => {
  for (const zip64 of [false, true]) {
    await withTempDir(async (dir) => {
      const path = join(dir, "ok.pt");
      await Deno.writeFile(
        path,
        buildZip([{ name: "archive/data.pkl", data: PKL, zip64 }, { name: "archive/version", data: new TextEncoder().encode("3\n") }], {
          zip64End: zip64,
        }),
      );
      const ckpt = await readTorchCheckpoint(path);
      assert.ok(isKind(ckpt.root, "dict"));
      assert.equal(ckpt.prefix, "archive/");
    });
  }
});

Deno.test("zip entries named with ../ or absolute paths are refused", async () => {
  await refusedZip(buildZip([{ name: "../evil/data.pkl", data: PKL }]), "points outside the archive's folder");
  await refusedZip(buildZip([{ name: "archive/../../x", data: PKL }]), "points outside");
  await refusedZip(buildZip([{ name: "/etc/data.pkl", data: PKL }]), "absolute path");
  await refusedZip(buildZip([{ name: "C:/x/data.pkl", data: PKL }]), "not a plain path");
  await refusedZip(buildZip([{ name: "a\\..\\data.pkl", data: PKL }]), "not a plain path");
});

Deno.test("a zip bomb (entries sharing bytes), compressed, encrypted and lying entries are refused", async () => {
  // The classic overlap bomb: a second entry whose local header sits inside the first entry's data.
  const inner = buildZip([{ name: "archive/data/1", data: new Uint8Array(32) }]).subarray(0, 30 + 14 + 32);
  const outerName = "archive/data/0";
  await refusedZip(
    buildZip([
      { name: outerName, data: inner },
      { name: "archive/data.pkl", data: PKL },
      { name: "archive/data/1", data: new Uint8Array(32), headerAt: 30 + outerName.length },
    ]),
    "share bytes",
    "zip bomb",
  );
  await refusedZip(buildZip([{ name: "archive/data.pkl", data: PKL, method: 8 }]), "compressed (zip method 8)", "torch.save");
  await refusedZip(buildZip([{ name: "archive/data.pkl", data: PKL, flags: 1 }]), "encrypted");
  await refusedZip(buildZip([{ name: "archive/data.pkl", data: PKL, declaredSize: 1 << 30 }]), "beyond the");
  await refusedZip(buildZip([{ name: "archive/data.pkl", data: PKL }, { name: "archive/data.pkl", data: PKL }]), "two entries named");
});

Deno.test("truncated archives are refused at every cut", async () => {
  const whole = torchZip(PKL);
  for (const cut of [0, 3, 10, 40, whole.length >> 1, whole.length - 30, whole.length - 1]) {
    await withTempDir(async (dir) => {
      const path = join(dir, "cut.pt");
      await Deno.writeFile(path, whole.subarray(0, cut));
      await assertWeightsError(() => readTorchCheckpoint(path), path);
    });
  }
});

Deno.test("the legacy (pre-1.6) format and big-endian files are refused with how to re-save them", async () => {
  await withTempDir(async (dir) => {
    const legacy = join(dir, "old.pt");
    await Deno.writeFile(legacy, pickle([0x80, 2, 0x8a, 0x0a], "ll.."));
    await assertWeightsError(
      () => readTorchCheckpoint(legacy),
      "legacy (pre-1.6) format",
      "torch.save(torch.load('old.pt', weights_only=True)",
    );
  });
  await refusedZip(
    buildZip([{ name: "archive/data.pkl", data: PKL }, { name: "archive/byteorder", data: new TextEncoder().encode("big") }]),
    `byte order "big"`,
  );
  await refusedZip(buildZip([{ name: "archive/other.bin", data: PKL }]), "without <name>/data.pkl");
  await refusedZip(
    buildZip([{ name: "archive/data.pkl", data: PKL }, { name: "elsewhere/x", data: PKL }]),
    `"elsewhere/x" lies outside the checkpoint's folder "archive/"`,
  );
});
