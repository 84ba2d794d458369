/**
 * A small typed builder for ONNX graphs. Each helper appends one node and returns the
 * output value with its shape already computed (see shapes.ts), so wiring mistakes
 * surface at build time. Node names carry the current scope ("blocks.3/attn/..."):
 * that is what lets `fora profile` attribute kernel time to model parts.
 *
 * The builder has a compute dtype. Graph inputs and outputs stay float32 (Deno's
 * global Float16Array breaks fp16 tensors in onnxruntime-node), weights keep the
 * dtype they have on disk and are cast once (ORT folds such casts at load time).
 */
import { type DType, encodeValues, isFloat, itemSize, onnxElemType } from "./dtypes.ts";
import {
  addDims,
  broadcast,
  type Dim,
  formatShape,
  matmulShape,
  normAxis,
  reshapeShape,
  sameDims,
  type Shape,
  shapeError,
} from "./shapes.ts";

export interface Value {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
}

/** A weight stored in a file next to the model: referenced, never copied. */
export interface ExternalTensor {
  name: string;
  /** Path relative to the folder of the .onnx file; must stay inside it. */
  location: string;
  offset: number;
  length: number;
  dtype: DType;
  shape: number[];
}

export type AttrValue = number | string | number[] | { float: number } | { floats: number[] } | { graph: GraphData };

export interface NodeData {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
}

export interface InitializerData {
  name: string;
  dtype: DType;
  shape: number[];
  raw?: Uint8Array<ArrayBuffer>;
  external?: { location: string; offset: number; length: number };
}

export interface GraphData {
  name: string;
  inputs: Value[];
  outputs: Value[];
  nodes: NodeData[];
  initializers: InitializerData[];
}

interface Shared {
  counter: number;
  initializers: InitializerData[];
  /** Hoisted nodes (weight casts) that belong to the root graph. */
  rootNodes: NodeData[];
  weightCache: Map<string, Value>;
}

export type ComputeType = "float32" | "float16";

export class GraphBuilder {
  readonly computeType: ComputeType;
  readonly name: string;
  private readonly shared: Shared;
  private readonly nodes: NodeData[];
  private readonly inputs: Value[] = [];
  private readonly outputs: Value[] = [];
  private readonly scopes: string[] = [];
  private readonly isRoot: boolean;

  constructor(name: string, computeType: ComputeType, shared?: Shared) {
    this.name = name;
    this.computeType = computeType;
    this.isRoot = shared === undefined;
    this.shared = shared ?? { counter: 0, initializers: [], rootNodes: [], weightCache: new Map() };
    this.nodes = this.isRoot ? this.shared.rootNodes : [];
  }

  // ---- structure -------------------------------------------------------------

  /** Runs `fn` with node names prefixed by `name/`. */
  scope<T>(name: string, fn: () => T): T {
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /**
   * Declares a graph input; float inputs are float32 and, unless `keepFloat32` (for
   * values such as timesteps whose precision fp16 would destroy), cast to the compute type.
   */
  input(name: string, dtype: DType, shape: Shape, opts: { keepFloat32?: boolean } = {}): Value {
    const v: Value = { name, dtype, shape };
    this.inputs.push(v);
    return isFloat(dtype) && !opts.keepFloat32 ? this.toCompute(v) : v;
  }

  /** Declares a graph output named `name`; float outputs are returned as float32. */
  output(v: Value, name: string): void {
    if (this.inputs.some((i) => i.name === name) || this.outputs.some((o) => o.name === name)) {
      throw shapeError(this.scoped("output"), `name "${name}" is already a graph input or output`);
    }
    const out = isFloat(v.dtype) && v.dtype !== "float32" ? this.cast(v, "float32") : v;
    this.node("Identity", [out], [{ dtype: out.dtype, shape: out.shape }], {}, "", name);
    this.outputs.push({ name, dtype: out.dtype, shape: out.shape });
  }

  /** A weight referenced from a file next to the model, in the compute type. */
  weight(t: ExternalTensor): Value {
    const key = `${t.location}@${t.offset}:${t.length}`;
    const cached = this.shared.weightCache.get(key);
    if (cached) return cached;
    const expected = t.shape.reduce((a, b) => a * b, 1) * itemSize(t.dtype);
    if (expected !== t.length) {
      throw shapeError(t.name, `external tensor holds ${t.length} bytes but shape ${formatShape(t.shape)} of ${t.dtype} needs ${expected}`);
    }
    const name = `w:${t.name}`;
    this.shared.initializers.push({
      name,
      dtype: t.dtype,
      shape: t.shape,
      external: { location: t.location, offset: t.offset, length: t.length },
    });
    let v: Value = { name, dtype: t.dtype, shape: t.shape };
    if (isFloat(t.dtype) && t.dtype !== this.computeType) {
      // The cast lives in the root graph even when first asked for inside a branch,
      // so that ORT folds it once at load time.
      const castName = `cast:${t.name}`;
      this.shared.rootNodes.push({
        name: castName,
        opType: "Cast",
        domain: "",
        inputs: [name],
        outputs: [castName],
        attrs: { to: onnxElemType(this.computeType) },
      });
      v = { name: castName, dtype: this.computeType, shape: t.shape };
    }
    this.shared.weightCache.set(key, v);
    return v;
  }

  /** A constant embedded in the model (small tensors only: tables, scalars). */
  constant(values: ArrayLike<number> | BigInt64Array, shape: number[], dtype: DType = this.computeType): Value {
    const n = shape.reduce((a, b) => a * b, 1);
    if (values.length !== n) {
      throw shapeError(this.scoped("constant"), `${values.length} values for shape ${formatShape(shape)}`);
    }
    const name = this.uniqueName("const");
    this.shared.initializers.push({ name, dtype, shape, raw: encodeValues(values, dtype) });
    return { name, dtype, shape };
  }

  scalar(value: number, dtype: DType = this.computeType): Value {
    return this.constant([value], [], dtype);
  }

  /** 1-D int64 constant, the form Reshape/Slice/Unsqueeze take their parameters in. */
  ints(values: number[]): Value {
    return this.constant(values, [values.length], "int64");
  }

  /** Appends a node; the generic form behind every helper below. */
  node(
    opType: string,
    inputs: (Value | null)[],
    outputs: { dtype: DType; shape: Shape }[],
    attrs: Record<string, AttrValue> = {},
    domain = "",
    outputName?: string,
  ): Value[] {
    const name = this.uniqueName(opType);
    const outs = outputs.map((o, i) => ({
      name: outputName && outputs.length === 1 ? outputName : `${name}:${i}`,
      dtype: o.dtype,
      shape: o.shape,
    }));
    this.nodes.push({
      name,
      opType,
      domain,
      inputs: inputs.map((v) => (v ? v.name : "")),
      outputs: outs.map((o) => o.name),
      attrs,
    });
    return outs;
  }

  /**
   * `If` with two branches built by callbacks. Branches may use any value of the
   * enclosing graph; they must return values of the same dtypes and ranks.
   */
  ifElse(cond: Value, thenFn: (g: GraphBuilder) => Value[], elseFn: (g: GraphBuilder) => Value[]): Value[] {
    const where = this.scoped("If");
    const branch = (label: string, fn: (g: GraphBuilder) => Value[]) => {
      const sub = new GraphBuilder(`${this.name}_${label}`, this.computeType, this.shared);
      sub.scopes.push(...this.scopes, label);
      const outs = fn(sub);
      // Branch outputs keep the compute type: only the root graph's outputs are float32.
      outs.forEach((v) => {
        const [o] = sub.node("Identity", [v], [{ dtype: v.dtype, shape: v.shape }]);
        sub.outputs.push(o);
      });
      return { data: sub.data(), outs };
    };
    const a = branch("then", thenFn), b = branch("else", elseFn);
    if (a.outs.length !== b.outs.length) throw shapeError(where, "branches return different numbers of values");
    const outputs = a.outs.map((v, i) => {
      const w = b.outs[i];
      if (v.shape.length !== w.shape.length) {
        throw shapeError(where, `branch outputs ${i} differ: ${formatShape(v.shape)} vs ${formatShape(w.shape)}`);
      }
      return { dtype: a.data.outputs[i].dtype, shape: v.shape.map((d, k) => (d === w.shape[k] ? d : `${where}:${i}.${k}`)) };
    });
    return this.node("If", [cond], outputs, { then_branch: { graph: a.data }, else_branch: { graph: b.data } });
  }

  data(): GraphData {
    return {
      name: this.name,
      inputs: this.inputs,
      outputs: this.outputs,
      nodes: this.nodes,
      initializers: this.isRoot ? this.shared.initializers : [],
    };
  }

  // ---- elementwise -----------------------------------------------------------

  add(a: Value, b: Value): Value {
    return this.binary("Add", a, b);
  }
  sub(a: Value, b: Value): Value {
    return this.binary("Sub", a, b);
  }
  mul(a: Value, b: Value): Value {
    return this.binary("Mul", a, b);
  }
  div(a: Value, b: Value): Value {
    return this.binary("Div", a, b);
  }
  unary(opType: "Sigmoid" | "Tanh" | "Exp" | "Sin" | "Cos" | "Sqrt" | "Neg" | "Relu" | "Erf" | "Reciprocal", x: Value): Value {
    return this.node(opType, [x], [{ dtype: x.dtype, shape: x.shape }])[0];
  }
  where(cond: Value, a: Value, b: Value): Value {
    const shape = broadcast(this.scoped("Where"), cond.shape, a.shape, b.shape);
    return this.node("Where", [cond, a, b], [{ dtype: a.dtype, shape }])[0];
  }
  cast(x: Value, dtype: DType): Value {
    if (x.dtype === dtype) return x;
    return this.node("Cast", [x], [{ dtype, shape: x.shape }], { to: onnxElemType(dtype) })[0];
  }
  /** Casts a float value to the compute type. */
  toCompute(x: Value): Value {
    return isFloat(x.dtype) ? this.cast(x, this.computeType) : x;
  }

  // ---- linear algebra ----------------------------------------------------------

  matmul(a: Value, b: Value): Value {
    this.checkSameType("MatMul", a, b);
    const shape = matmulShape(this.scoped("MatMul"), a.shape, b.shape);
    return this.node("MatMul", [a, b], [{ dtype: a.dtype, shape }])[0];
  }

  // ---- shape ops ---------------------------------------------------------------

  reshape(x: Value, target: number[]): Value {
    const shape = reshapeShape(this.scoped("Reshape"), x.shape, target);
    return this.node("Reshape", [x, this.ints(target)], [{ dtype: x.dtype, shape }])[0];
  }
  transpose(x: Value, perm: number[]): Value {
    if (perm.length !== x.shape.length || [...perm].sort().some((p, i) => p !== i)) {
      throw shapeError(this.scoped("Transpose"), `perm [${perm}] does not fit ${formatShape(x.shape)}`);
    }
    return this.node("Transpose", [x], [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]) }], { perm })[0];
  }
  concat(xs: Value[], axis: number): Value {
    const where = this.scoped("Concat");
    const rank = xs[0].shape.length;
    const a = normAxis(where, axis, rank);
    const shape = [...xs[0].shape];
    for (const x of xs.slice(1)) {
      if (x.shape.length !== rank || x.dtype !== xs[0].dtype) {
        throw shapeError(where, `cannot concat ${xs.map((v) => formatShape(v.shape)).join(", ")}`);
      }
      x.shape.forEach((d, i) => {
        if (i === a) shape[a] = addDims(shape[a], d);
        else if (!sameDims(d, shape[i])) throw shapeError(where, `dim ${i} differs: ${formatShape(x.shape)}`);
      });
    }
    return this.node("Concat", xs, [{ dtype: xs[0].dtype, shape }], { axis: a })[0];
  }
  split(x: Value, axis: number, sizes: number[]): Value[] {
    const where = this.scoped("Split");
    const a = normAxis(where, axis, x.shape.length);
    const total = sizes.reduce((s, v) => s + v, 0);
    if (typeof x.shape[a] === "number" && x.shape[a] !== total) {
      throw shapeError(where, `sizes [${sizes}] do not sum to dim ${a} of ${formatShape(x.shape)}`);
    }
    return this.node(
      "Split",
      [x, this.ints(sizes)],
      sizes.map((s) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === a ? s : d)) })),
      { axis: a },
    );
  }
  /** Slice along one axis, [start, end) with end clamped like numpy. */
  slice(x: Value, axis: number, start: number, end: number): Value {
    const where = this.scoped("Slice");
    const a = normAxis(where, axis, x.shape.length);
    const d = x.shape[a];
    const len = typeof d === "number" ? Math.max(0, Math.min(end, d) - start) : `${where}:len`;
    const shape = x.shape.map((v, i) => (i === a ? len : v));
    return this.node("Slice", [x, this.ints([start]), this.ints([end]), this.ints([a])], [{ dtype: x.dtype, shape }])[0];
  }
  unsqueeze(x: Value, axes: number[]): Value {
    const rank = x.shape.length + axes.length;
    const norm = axes.map((ax) => normAxis(this.scoped("Unsqueeze"), ax, rank)).sort((p, q) => p - q);
    const shape: Dim[] = [...x.shape];
    for (const ax of norm) shape.splice(ax, 0, 1);
    return this.node("Unsqueeze", [x, this.ints(norm)], [{ dtype: x.dtype, shape }])[0];
  }
  expand(x: Value, target: number[]): Value {
    const shape = broadcast(this.scoped("Expand"), x.shape, target);
    return this.node("Expand", [x, this.ints(target)], [{ dtype: x.dtype, shape }])[0];
  }
  gather(table: Value, indices: Value, axis = 0): Value {
    const a = normAxis(this.scoped("Gather"), axis, table.shape.length);
    const shape = [...table.shape.slice(0, a), ...indices.shape, ...table.shape.slice(a + 1)];
    return this.node("Gather", [table, indices], [{ dtype: table.dtype, shape }], { axis: a })[0];
  }
  /** Tiles a value `times` along a new leading axis and merges it into axis 0. */
  concatSelf(x: Value, times: number): Value {
    return times === 1 ? x : this.concat(Array(times).fill(x), 0);
  }

  // ---- reductions and normalisation -------------------------------------------

  softmax(x: Value, axis = -1): Value {
    return this.node("Softmax", [x], [{ dtype: x.dtype, shape: x.shape }], { axis })[0];
  }
  /** LayerNormalization over the last axis; statistics are kept in float32 (stash_type 1). */
  layerNorm(x: Value, eps: number, scale?: Value, bias?: Value): Value {
    const d = x.shape[x.shape.length - 1];
    if (typeof d !== "number") throw shapeError(this.scoped("LayerNorm"), "last dim must be static");
    const gamma = scale ?? this.constant(new Float32Array(d).fill(1), [d]);
    const beta = bias ?? this.constant(new Float32Array(d), [d]);
    return this.node("LayerNormalization", [x, gamma, beta], [{ dtype: x.dtype, shape: x.shape }], {
      axis: -1,
      epsilon: { float: eps },
      stash_type: 1,
    })[0];
  }

  // ---- convolution -------------------------------------------------------------

  conv(x: Value, w: Value, b: Value | null, opts: { stride?: number; pad?: number } = {}): Value {
    const where = this.scoped("Conv");
    const stride = opts.stride ?? 1, pad = opts.pad ?? 0;
    const [n, c, h, wd] = x.shape;
    const [oc, ic, kh, kw] = w.shape as number[];
    if (typeof c === "number" && c !== ic) throw shapeError(where, `input has ${c} channels, kernel expects ${ic}`);
    const out = (d: Dim, k: number): Dim => (typeof d === "number" ? Math.floor((d + 2 * pad - k) / stride) + 1 : `${where}:hw`);
    return this.node("Conv", b ? [x, w, b] : [x, w], [{ dtype: x.dtype, shape: [n, oc, out(h, kh), out(wd, kw)] }], {
      kernel_shape: [kh, kw],
      strides: [stride, stride],
      pads: [pad, pad, pad, pad],
    })[0];
  }

  // ---- internals ---------------------------------------------------------------

  private binary(opType: string, a: Value, b: Value): Value {
    this.checkSameType(opType, a, b);
    const shape = broadcast(this.scoped(opType), a.shape, b.shape);
    return this.node(opType, [a, b], [{ dtype: a.dtype, shape }])[0];
  }

  private checkSameType(opType: string, a: Value, b: Value): void {
    if (a.dtype !== b.dtype) {
      throw shapeError(this.scoped(opType), `operand types differ: ${a.name} is ${a.dtype}, ${b.name} is ${b.dtype}`);
    }
  }

  scoped(label: string): string {
    return [...this.scopes, label].join("/");
  }

  private uniqueName(label: string): string {
    return `${this.scoped(label)}_${this.shared.counter++}`;
  }
}
