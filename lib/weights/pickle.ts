/**
 * A restricted unpickler for PyTorch checkpoints (pickle protocols 2-5). Python's pickle is a
 * small stack machine whose GLOBAL / REDUCE / BUILD / NEWOBJ opcodes import and call anything;
 * this one never calls anything. It knows a fixed list of names, each mapped to a TypeScript
 * constructor of plain data: dicts (and collections.OrderedDict), lists, tuples, strings,
 * bytes, numbers, booleans, None, tensors (torch._utils._rebuild_tensor_v2 / _rebuild_parameter
 * over storages named by persistent ids) and argparse.Namespace as a plain record. Any other
 * name is refused when it is first mentioned, before any value is built from it, with one
 * line naming the file and the `module.name`.
 *
 * The machine is a loop over opcodes (no recursion), values nest at most MAX_NESTING deep,
 * and every length, memo index and stack pop is checked, so a hostile pickle ends in a
 * ForaError, never in a crash, a hang or an out-of-memory.
 */
import { ForaError } from "../errors.ts";

/** Element types of PyTorch storages, named as safetensors names them. */
export type TorchDType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

export const TORCH_ITEM_SIZE: Record<TorchDType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** torch.<Name>Storage classes; UntypedStorage (newer PyTorch) holds raw bytes. */
const STORAGE_DTYPES: Record<string, TorchDType> = {
  DoubleStorage: "F64",
  FloatStorage: "F32",
  HalfStorage: "F16",
  BFloat16Storage: "BF16",
  LongStorage: "I64",
  IntStorage: "I32",
  ShortStorage: "I16",
  CharStorage: "I8",
  ByteStorage: "U8",
  BoolStorage: "BOOL",
  UntypedStorage: "U8",
};

export interface Storage {
  kind: "storage";
  /** The persistent id's key: the storage is the archive's entry data/<key>. */
  key: string;
  dtype: TorchDType;
  /** Elements. */
  numel: number;
}

export interface TorchTensor {
  kind: "tensor";
  storage: Storage;
  dtype: TorchDType;
  /** In elements of the storage. */
  storageOffset: number;
  shape: number[];
  stride: number[];
}

export type PyKey = string | number | bigint | boolean | null;
export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyList
  | PyTuple
  | PyDict
  | PyNamespace
  | PyGlobal
  | Storage
  | TorchTensor;

export interface PyList {
  kind: "list";
  items: PyValue[];
}
export interface PyTuple {
  kind: "tuple";
  items: readonly PyValue[];
}
export interface PyDict {
  kind: "dict";
  entries: Map<PyKey, PyValue>;
}
/** argparse.Namespace: attribute names to values. */
export interface PyNamespace {
  kind: "namespace";
  fields: Map<string, PyValue>;
}

/** A name the pickle imported (never called): only those listed in ALLOWED ever exist. */
export interface PyGlobal {
  kind: "global";
  name: AllowedName;
}

const ALLOWED = [
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter",
  "argparse.Namespace",
  "_codecs.encode",
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
] as const;
type AllowedName = (typeof ALLOWED)[number];

/** Deeper than any checkpoint (a state dict nests 2-4 levels); far below what would exhaust memory. */
export const MAX_NESTING = 100;

export interface UnpickleOptions {
  /** Named in every error. */
  file: string;
  /** Called once per storage the pickle names; throws when the archive cannot back it. */
  checkStorage(storage: Storage): void;
}

/** Why the refusal: the names a checkpoint may hold, said the same way in every message. */
const ONLY = "a checkpoint may hold only tensors, dicts, lists, tuples, strings, numbers and argparse.Namespace";

export function unpickle(data: Uint8Array, opts: UnpickleOptions): PyValue {
  const { file } = opts;
  const fail: (message: string) => never = (message) => {
    throw new ForaError("weights", `${file}: ${message}`);
  };
  const refuse: (what: string) => never = (what) =>
    fail(`refused: the pickle uses ${what}, which fora never loads (${ONLY}); nothing was run`);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = 0;
  const need = (n: number, what: string) => {
    if (n > data.length - pos) fail(`pickle ends inside ${what} at byte ${pos} (truncated data.pkl?)`);
  };
  const u8 = () => (need(1, "an opcode argument"), data[pos++]);
  const u16 = () => (need(2, "an opcode argument"), pos += 2, dv.getUint16(pos - 2, true));
  const u32 = () => (need(4, "an opcode argument"), pos += 4, dv.getUint32(pos - 4, true));
  const u64 = (what: string) => {
    need(8, what);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(data.length)) fail(`${what} of ${v} bytes runs past the ${data.length}-byte pickle`);
    return Number(v);
  };
  const bytes = (n: number, what: string) => {
    need(n, what);
    pos += n;
    return data.subarray(pos - n, pos);
  };
  const utf8 = (b: Uint8Array) => {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(b);
    } catch {
      return fail(`pickle holds a string that is not valid UTF-8 at byte ${pos}`);
    }
  };
  const line = (what: string) => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0 || end - pos > 256) fail(`pickle ends inside ${what} at byte ${pos} (truncated data.pkl?)`);
    const s = new TextDecoder("latin1").decode(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };

  const stack: PyValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();
  const depth = new WeakMap<object, number>();
  const depthOf = (v: PyValue) => (typeof v === "object" && v !== null ? depth.get(v) ?? 0 : 0);
  /** Records that `child` now sits inside `parent`, refusing nesting beyond the bound. */
  const nest = (parent: PyList | PyTuple | PyDict | PyNamespace, child: PyValue) => {
    const d = Math.max(depth.get(parent) ?? 1, depthOf(child) + 1);
    if (d > MAX_NESTING) fail(`pickle nests values more than ${MAX_NESTING} levels deep; not a checkpoint`);
    depth.set(parent, d);
  };
  const pop = (what: string): PyValue => {
    if (stack.length <= (marks.at(-1) ?? 0)) fail(`malformed pickle: ${what} finds no value on the stack (byte ${pos})`);
    return stack.pop()!;
  };
  const top = (what: string): PyValue => {
    if (stack.length <= (marks.at(-1) ?? 0)) fail(`malformed pickle: ${what} finds no value on the stack (byte ${pos})`);
    return stack[stack.length - 1];
  };
  const popMark = (what: string): PyValue[] => {
    const m = marks.pop();
    if (m === undefined) fail(`malformed pickle: ${what} without a MARK (byte ${pos})`);
    return stack.splice(m);
  };
  const describe = (v: PyValue): string => {
    if (v === null) return "None";
    if (typeof v !== "object") return typeof v;
    if (v instanceof Uint8Array) return "bytes";
    return v.kind === "global" ? v.name : v.kind;
  };
  const key = (v: PyValue): PyKey => {
    if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return v;
    return fail(`malformed pickle: a dict key is a ${describe(v)}; checkpoints key dicts by strings and numbers`);
  };
  const tuple = (items: PyValue[]): PyTuple => {
    const t: PyTuple = { kind: "tuple", items };
    for (const v of items) nest(t, v);
    return t;
  };
  const setItems = (target: PyValue, items: PyValue[]) => {
    if (!isKind(target, "dict")) {
      fail(`malformed pickle: SETITEM(S) on a ${describe(target)} (byte ${pos})`);
    }
    if (items.length % 2 !== 0) fail(`malformed pickle: SETITEMS with an odd number of values (byte ${pos})`);
    for (let i = 0; i < items.length; i += 2) {
      target.entries.set(key(items[i]), items[i + 1]);
      nest(target, items[i + 1]);
    }
  };
  const append = (target: PyValue, items: PyValue[]) => {
    if (!isKind(target, "list")) {
      fail(`malformed pickle: APPEND(S) on a ${describe(target)} (byte ${pos})`);
    }
    for (const v of items) {
      target.items.push(v);
      nest(target, v);
    }
  };
  const global = (module: string, name: string): PyGlobal => {
    const full = `${module}.${name}`;
    const shown = /^[\x20-\x7e]*$/.test(full) ? full : JSON.stringify(full).replace(/[\u007f-\u009f\u2028\u2029]/g, "?");
    if (!(ALLOWED as readonly string[]).includes(full)) refuse(shown);
    return { kind: "global", name: full as AllowedName };
  };
  const int = (
    v: bigint,
  ): number | bigint => (v >= -BigInt(Number.MAX_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
  const long = (b: Uint8Array): number | bigint => {
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b.length > 0 && b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return int(v);
  };
  const persistent = (pid: PyValue): Storage => {
    const items = isKind(pid, "tuple") ? pid.items : undefined;
    const [tag, type, storageKey, _location, numel] = items ?? [];
    const cls = type;
    const ok = items?.length === 5 && tag === "storage" && typeof storageKey === "string" && typeof numel === "number" &&
      Number.isSafeInteger(numel) && numel >= 0 && isKind(cls, "global") && cls.name.startsWith("torch.") && cls.name.endsWith("Storage");
    if (!ok) fail(`malformed pickle: a persistent id that is not ("storage", torch.<Type>Storage, key, location, size) (byte ${pos})`);
    const storage: Storage = {
      kind: "storage",
      key: storageKey as string,
      dtype: STORAGE_DTYPES[(cls as PyGlobal).name.slice("torch.".length)],
      numel: numel as number,
    };
    opts.checkStorage(storage);
    return storage;
  };
  const reduce = (fn: PyValue, args: PyValue): PyValue => {
    if (!isKind(fn, "global")) {
      return fail(`malformed pickle: REDUCE calls a ${describe(fn)} (byte ${pos})`);
    }
    if (!isKind(args, "tuple")) {
      return fail(`malformed pickle: REDUCE of ${fn.name} without an argument tuple (byte ${pos})`);
    }
    const a = args.items;
    switch (fn.name) {
      case "collections.OrderedDict": {
        if (a.length !== 0) fail(`malformed pickle: collections.OrderedDict called with arguments (byte ${pos})`);
        return { kind: "dict", entries: new Map() };
      }
      case "torch._utils._rebuild_tensor_v2":
        return rebuildTensor(a);
      case "torch._utils._rebuild_parameter": {
        const [data, grad, hooks] = a;
        if (a.length !== 3 || typeof grad !== "boolean" || !isTensor(data)) {
          fail(`malformed pickle: torch._utils._rebuild_parameter needs (tensor, requires_grad, hooks) (byte ${pos})`);
        }
        checkHooks(hooks);
        return data as TorchTensor;
      }
      case "_codecs.encode": {
        const [text, encoding] = a;
        if (a.length !== 2 || typeof text !== "string" || (encoding !== "latin1" && encoding !== "latin-1")) {
          fail(`malformed pickle: _codecs.encode is only read as encode(str, "latin1") (byte ${pos})`);
        }
        const s = text as string;
        return Uint8Array.from(s, (c) => c.charCodeAt(0) > 0xff ? fail(`malformed pickle: latin1 text beyond U+00FF`) : c.charCodeAt(0));
      }
      default:
        // A storage class or argparse.Namespace called like a function: never something torch.save writes.
        return refuse(`REDUCE on ${fn.name}`);
    }
  };
  const checkHooks = (hooks: PyValue) => {
    const empty = isKind(hooks, "dict") && hooks.entries.size === 0;
    if (!empty) fail(`malformed pickle: a tensor with backward hooks; checkpoints carry none (byte ${pos})`);
  };
  const rebuildTensor = (a: readonly PyValue[]): TorchTensor => {
    const [storage, offset, size, stride, grad, hooks] = a;
    const ints = (v: PyValue) =>
      isKind(v, "tuple") && v.items.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)
        ? v.items as number[]
        : undefined;
    const shape = ints(size), strides = ints(stride);
    const ok = (a.length === 6 || a.length === 7) && isKind(storage, "storage") && typeof offset === "number" &&
      Number.isSafeInteger(offset) && offset >= 0 && shape !== undefined && strides !== undefined && shape.length === strides.length &&
      typeof grad === "boolean";
    if (!ok) {
      fail(`malformed pickle: torch._utils._rebuild_tensor_v2 needs (storage, offset, size, stride, requires_grad, hooks) (byte ${pos})`);
    }
    checkHooks(hooks);
    const st = storage as Storage;
    const numel = shape!.reduce((n, d) => n * d, 1);
    // The last element the view touches must lie inside the storage.
    const last = shape!.reduce((n, d, i) => n + (d - 1) * strides![i], offset as number);
    if (!Number.isSafeInteger(numel) || (numel > 0 && !(Number.isSafeInteger(last) && last < st.numel))) {
      fail(
        `a tensor of shape [${shape!.join(", ")}] at offset ${offset} with stride [${strides!.join(", ")}] ` +
          `reaches beyond its storage ${JSON.stringify(st.key)} of ${st.numel} elements (corrupt checkpoint)`,
      );
    }
    return { kind: "tensor", storage: st, dtype: st.dtype, storageOffset: offset as number, shape: shape!, stride: strides! };
  };
  const build = (target: PyValue, state: PyValue) => {
    const isDict = isKind(state, "dict");
    if (typeof target !== "object" || target === null || target instanceof Uint8Array) {
      return refuse(`BUILD on a ${describe(target)}`);
    }
    if (target.kind === "namespace" && isDict) {
      for (const [k, v] of (state as PyDict).entries) {
        if (typeof k !== "string") fail(`malformed pickle: argparse.Namespace attribute named by a ${typeof k}`);
        target.fields.set(k as string, v);
        nest(target, v);
      }
      return;
    }
    // An OrderedDict's instance attributes (a state_dict's `_metadata`): nothing a reader needs.
    if (target.kind === "dict" && isDict) return;
    refuse(`BUILD on a ${describe(target)}`);
  };
  const newObject = (cls: PyValue, args: PyValue, kwargs?: PyValue) => {
    if (!isKind(cls, "global")) {
      return fail(`malformed pickle: NEWOBJ of a ${describe(cls)} (byte ${pos})`);
    }
    const emptyTuple = isKind(args, "tuple") && args.items.length === 0;
    const emptyKw = kwargs === undefined || (isKind(kwargs, "dict") && kwargs.entries.size === 0);
    if (cls.name !== "argparse.Namespace") return refuse(`NEWOBJ on ${cls.name}`);
    if (!emptyTuple || !emptyKw) fail(`malformed pickle: argparse.Namespace created with arguments (byte ${pos})`);
    const ns: PyNamespace = { kind: "namespace", fields: new Map() };
    return ns;
  };

  if (data[0] !== 0x80 || data.length < 2 || data[1] < 2 || data[1] > 5) {
    fail(`data.pkl is not a pickle of protocol 2-5 (first bytes ${Array.from(data.subarray(0, 2), (b) => b.toString(16)).join(" ")})`);
  }
  for (;;) {
    if (pos >= data.length) fail("pickle ends without its STOP opcode (truncated data.pkl?)");
    const at = pos;
    const op = data[pos++];
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail("pickle protocol above 5");
        break;
      case 0x95: // FRAME: a length hint only
        u64("a frame");
        break;
      case 0x2e: { // STOP
        if (marks.length > 0 || stack.length !== 1) {
          fail(`malformed pickle: STOP with ${stack.length} values and ${marks.length} marks open`);
        }
        return stack[0];
      }
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        pop("POP");
        break;
      case 0x31: // POP_MARK
        popMark("POP_MARK");
        break;
      case 0x32: // DUP
        stack.push(top("DUP"));
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        need(4, "BININT");
        stack.push(dv.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(long(bytes(u8(), "LONG1")));
        break;
      case 0x8b: { // LONG4
        const n = u32();
        if (n > 64) fail(`pickle holds a ${n}-byte integer; checkpoints hold none this large`);
        stack.push(long(bytes(n, "LONG4")));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8, "BINFLOAT");
        stack.push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8(bytes(u32(), "BINUNICODE")));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(bytes(u8(), "SHORT_BINUNICODE")));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8(bytes(u64("BINUNICODE8"), "BINUNICODE8")));
        break;
      case 0x55: // SHORT_BINSTRING: Python 2 str, read as latin1
        stack.push(new TextDecoder("latin1").decode(bytes(u8(), "SHORT_BINSTRING")));
        break;
      case 0x54: // BINSTRING
        stack.push(new TextDecoder("latin1").decode(bytes(u32(), "BINSTRING")));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(bytes(u8(), "SHORT_BINBYTES").slice());
        break;
      case 0x42: // BINBYTES
        stack.push(bytes(u32(), "BINBYTES").slice());
        break;
      case 0x8e: // BINBYTES8
        stack.push(bytes(u64("BINBYTES8"), "BINBYTES8").slice());
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push({ kind: "tuple", items: [] });
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: { // TUPLE3
        const n = op - 0x84;
        const items: PyValue[] = [];
        for (let i = 0; i < n; i++) items.unshift(pop(`TUPLE${n}`));
        stack.push(tuple(items));
        break;
      }
      case 0x74: // TUPLE
        stack.push(tuple(popMark("TUPLE")));
        break;
      case 0x5d: // EMPTY_LIST
        stack.push({ kind: "list", items: [] });
        break;
      case 0x6c: { // LIST
        const list: PyList = { kind: "list", items: [] };
        append(list, popMark("LIST"));
        stack.push(list);
        break;
      }
      case 0x61: { // APPEND
        const v = pop("APPEND");
        append(top("APPEND"), [v]);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark("APPENDS");
        append(top("APPENDS"), items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push({ kind: "dict", entries: new Map() });
        break;
      case 0x64: { // DICT
        const dict: PyDict = { kind: "dict", entries: new Map() };
        setItems(dict, popMark("DICT"));
        stack.push(dict);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop("SETITEM"), k = pop("SETITEM");
        setItems(top("SETITEM"), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark("SETITEMS");
        setItems(top("SETITEMS"), items);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top("BINPUT"));
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top("LONG_BINPUT"));
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top("MEMOIZE"));
        break;
      case 0x68: // BINGET
      case 0x6a: { // LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) fail(`malformed pickle: memo slot ${i} read before it was written (byte ${at})`);
        stack.push(memo.get(i)!);
        break;
      }
      case 0x63: { // GLOBAL
        const module = line("GLOBAL"), name = line("GLOBAL");
        stack.push(global(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop("STACK_GLOBAL"), module = pop("STACK_GLOBAL");
        if (typeof module !== "string" || typeof name !== "string") fail(`malformed pickle: STACK_GLOBAL of non-strings (byte ${at})`);
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop("REDUCE"), fn = pop("REDUCE");
        stack.push(reduce(fn, args));
        break;
      }
      case 0x62: { // BUILD
        const state = pop("BUILD");
        build(top("BUILD"), state);
        break;
      }
      case 0x81: { // NEWOBJ
        const args = pop("NEWOBJ"), cls = pop("NEWOBJ");
        stack.push(newObject(cls, args));
        break;
      }
      case 0x92: { // NEWOBJ_EX
        const kwargs = pop("NEWOBJ_EX"), args = pop("NEWOBJ_EX"), cls = pop("NEWOBJ_EX");
        stack.push(newObject(cls, args, kwargs));
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistent(pop("BINPERSID")));
        break;
      case 0x69: { // INST: module and class inline
        const module = line("INST"), name = line("INST");
        refuse(`INST (object creation) of ${module}.${name}`.replace(/[^\x20-\x7e]/g, "?"));
        break;
      }
      case 0x6f: { // OBJ: class first after the mark
        const m = marks.at(-1);
        const cls = m === undefined ? undefined : stack[m];
        refuse(`OBJ (object creation) of ${cls === undefined ? "an unknown class" : describe(cls)}`);
        break;
      }
      case 0x82: // EXT1
      case 0x83: // EXT2
      case 0x84: // EXT4
        refuse("the copyreg extension registry (EXT opcodes), which can import any name");
        break;
      case 0x50: // PERSID
        refuse("text persistent ids (PERSID)");
        break;
      case 0x8f: // EMPTY_SET
      case 0x90: // ADDITEMS
      case 0x91: // FROZENSET
        refuse("a set");
        break;
      case 0x96: // BYTEARRAY8
      case 0x97: // NEXT_BUFFER
      case 0x98: // READONLY_BUFFER
        refuse("out-of-band buffers (protocol 5)");
        break;
      default:
        fail(
          `pickle opcode 0x${op.toString(16).padStart(2, "0")} at byte ${at} is not supported (protocol 0/1 text opcodes, or corrupt data)`,
        );
    }
  }
}

export function isTensor(v: unknown): v is TorchTensor {
  return isKind(v, "tensor");
}

type Kinded = Exclude<PyValue, null | boolean | number | bigint | string | Uint8Array>;

export function isKind<K extends Kinded["kind"]>(v: unknown, kind: K): v is Extract<Kinded, { kind: K }> {
  return typeof v === "object" && v !== null && !(v instanceof Uint8Array) && (v as { kind?: string }).kind === kind;
}
