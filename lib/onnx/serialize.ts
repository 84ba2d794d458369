/** Turns a built graph into ONNX protobuf bytes (onnx-buf schema) and writes it atomically. */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  type AttributeProto,
  AttributeProto_AttributeType as AttrType,
  AttributeProtoSchema,
  type GraphProto,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
} from "onnx-buf";
import type { AttrValue, GraphData, InitializerData, NodeData, Value } from "./builder.ts";
import { onnxElemType } from "./dtypes.ts";
import { ForaError } from "../errors.ts";

/** Default-domain opset; com.microsoft ops (fused attention) use their own version 1. */
export const OPSET = 17;
const IR_VERSION = 8n;

export function serializeModel(graph: GraphData, docString = ""): Uint8Array {
  checkExternalLocations(graph);
  const model = create(ModelProtoSchema, {
    irVersion: IR_VERSION,
    producerName: "fora",
    docString,
    opsetImport: [
      create(OperatorSetIdProtoSchema, { domain: "", version: BigInt(OPSET) }),
      create(OperatorSetIdProtoSchema, { domain: "com.microsoft", version: 1n }),
    ],
    graph: graphProto(graph),
  });
  return toBinary(ModelProtoSchema, model);
}

/** Writes next to its final name, then renames: never a half-written model. */
export async function writeModel(path: string, graph: GraphData, docString = ""): Promise<void> {
  const bytes = serializeModel(graph, docString);
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new ForaError("io", `cannot write model ${path}: ${(e as Error).message}`);
  }
}

function checkExternalLocations(graph: GraphData): void {
  for (const init of graph.initializers) {
    const loc = init.external?.location;
    if (loc === undefined) continue;
    // ONNX Runtime refuses external data outside the model's folder; catch it here.
    if (loc.startsWith("/") || loc.split(/[\\/]/).includes("..")) {
      throw new ForaError("graph", `weight ${init.name}: external data location "${loc}" must be a relative path inside the bundle`);
    }
  }
}

function graphProto(g: GraphData): GraphProto {
  return create(GraphProtoSchema, {
    name: g.name,
    input: g.inputs.map(valueInfo),
    output: g.outputs.map(valueInfo),
    node: g.nodes.map(nodeProto),
    initializer: g.initializers.map(initializerProto),
  });
}

function valueInfo(v: Value) {
  return create(ValueInfoProtoSchema, {
    name: v.name,
    type: create(TypeProtoSchema, {
      value: {
        case: "tensorType",
        value: create(TypeProto_TensorSchema, {
          elemType: onnxElemType(v.dtype),
          shape: create(TensorShapeProtoSchema, {
            dim: v.shape.map((d) =>
              create(TensorShapeProto_DimensionSchema, {
                value: typeof d === "number" ? { case: "dimValue", value: BigInt(d) } : { case: "dimParam", value: d },
              })
            ),
          }),
        }),
      },
    }),
  });
}

function nodeProto(n: NodeData) {
  return create(NodeProtoSchema, {
    name: n.name,
    opType: n.opType,
    domain: n.domain,
    input: n.inputs,
    output: n.outputs,
    attribute: Object.entries(n.attrs).map(([name, v]) => attribute(name, v)),
  });
}

function attribute(name: string, v: AttrValue): AttributeProto {
  if (typeof v === "number") {
    if (!Number.isInteger(v)) throw new ForaError("graph", `attribute ${name}: use { float } for non-integers`);
    return create(AttributeProtoSchema, { name, type: AttrType.INT, i: BigInt(v) });
  }
  if (typeof v === "string") {
    return create(AttributeProtoSchema, { name, type: AttrType.STRING, s: new TextEncoder().encode(v) });
  }
  if (Array.isArray(v)) return create(AttributeProtoSchema, { name, type: AttrType.INTS, ints: v.map(BigInt) });
  if ("float" in v) return create(AttributeProtoSchema, { name, type: AttrType.FLOAT, f: v.float });
  if ("floats" in v) return create(AttributeProtoSchema, { name, type: AttrType.FLOATS, floats: v.floats });
  return create(AttributeProtoSchema, { name, type: AttrType.GRAPH, g: graphProto(v.graph) });
}

function initializerProto(t: InitializerData) {
  const base = { name: t.name, dataType: onnxElemType(t.dtype), dims: t.shape.map(BigInt) };
  if (t.external) {
    return create(TensorProtoSchema, {
      ...base,
      dataLocation: TensorProto_DataLocation.EXTERNAL,
      externalData: [
        create(StringStringEntryProtoSchema, { key: "location", value: t.external.location }),
        create(StringStringEntryProtoSchema, { key: "offset", value: String(t.external.offset) }),
        create(StringStringEntryProtoSchema, { key: "length", value: String(t.external.length) }),
      ],
    });
  }
  return create(TensorProtoSchema, { ...base, rawData: t.raw });
}
