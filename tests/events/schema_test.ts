import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import schema from "../../lib/events/schema.json" with { type: "json" };
import { type EventName, SCHEMA_VERSION } from "../../lib/events/types.ts";
import { collectRun, EXAMPLES } from "./examples.ts";

// strict: unknown keywords, bad `required` and other schema mistakes fail compilation.
const ajv = new Ajv2020({ strict: true, allErrors: true });
const validate = ajv.compile(schema);
const NAMES = Object.keys(EXAMPLES) as EventName[];

type JsonSchema = {
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean;
  $ref?: string;
  const?: unknown;
  enum?: unknown[];
  items?: JsonSchema;
  oneOf?: JsonSchema[];
  $defs?: Record<string, JsonSchema>;
  $id?: string;
};
const S = schema as unknown as JsonSchema;

function errorsOf(value: unknown): string {
  return validate(value) ? "" : JSON.stringify(validate.errors);
}

function withField(obj: object, path: string[], value: unknown): unknown {
  const copy = structuredClone(obj) as Record<string, unknown>;
  let at = copy;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string, unknown>;
  if (value === undefined) delete at[path.at(-1)!];
  else at[path.at(-1)!] = value;
  return copy;
}

Deno.test("the schema is valid draft 2020-12 and its $id carries SCHEMA_VERSION", () => {
  assert.equal(
    (schema as { $schema: string }).$schema,
    "https://json-schema.org/draft/2020-12/schema",
  );
  assert.equal(S.$id, `urn:fora:schema:events:${SCHEMA_VERSION}`);
  assert.equal(
    S.$defs!.run_start.properties!.schema_version.const,
    SCHEMA_VERSION,
  );
});

Deno.test("the schema's oneOf has exactly one branch per event of the ForaEvent union", () => {
  const refs = S.oneOf!.map((b) => b.$ref);
  assert.deepEqual(refs, NAMES.map((n) => `#/$defs/${n}`));
  assert.deepEqual(S.properties!.event.enum, NAMES);
  for (const name of NAMES) {
    assert.equal(S.$defs![name].properties!.event.const, name);
  }
});

Deno.test("every example event, all fields filled, validates", () => {
  for (const name of NAMES) assert.equal(errorsOf(EXAMPLES[name]), "", name);
});

Deno.test("schema properties match types.ts field for field, nested objects included", () => {
  // The examples are type-checked as Required<...> of each event type, so their keys are the types' keys.
  const check = (
    where: string,
    s: JsonSchema,
    example: Record<string, unknown>,
  ) => {
    assert.deepEqual(
      Object.keys(s.properties!).sort(),
      Object.keys(example).sort(),
      where,
    );
    assert.equal(
      s.additionalProperties,
      false,
      `${where}: additionalProperties`,
    );
  };
  for (const name of NAMES) check(name, S.$defs![name], EXAMPLES[name]);
  const start = S.$defs!.run_start.properties!;
  check("run_start.model", start.model, EXAMPLES.run_start.model);
  check("run_start.plan", start.plan, EXAMPLES.run_start.plan);
  check(
    "run_start.plan.policy",
    start.plan.properties!.policy,
    EXAMPLES.run_start.plan.policy,
  );
  check(
    "run_end.totals",
    S.$defs!.run_end.properties!.totals,
    EXAMPLES.run_end.totals,
  );
});

Deno.test("every field is required, except run_end.error, step.indicator and run_start.size (fora generate only)", () => {
  const OPTIONAL: Partial<Record<EventName, string[]>> = { run_end: ["error"], step: ["indicator"], run_start: ["size"] };
  for (const name of NAMES) {
    const props = Object.keys(S.$defs![name].properties!);
    const optional = OPTIONAL[name] ?? [];
    assert.deepEqual(
      [...S.$defs![name].required!].sort(),
      props.filter((p) => !optional.includes(p)).sort(),
      name,
    );
    for (const field of S.$defs![name].required!) {
      assert.notEqual(
        errorsOf(withField(EXAMPLES[name], [field], undefined)),
        "",
        `${name} without ${field}`,
      );
    }
  }
});

Deno.test("extra fields, unknown events and unknown step kinds are rejected", () => {
  assert.notEqual(errorsOf({ ...EXAMPLES.step, layer: 3 }), "");
  assert.notEqual(
    errorsOf(withField(EXAMPLES.run_start, ["model", "dtype"], "f16")),
    "",
  );
  assert.notEqual(
    errorsOf(withField(EXAMPLES.run_end, ["totals", "fps"], 3)),
    "",
  );
  assert.notEqual(errorsOf({ ...EXAMPLES.step, event: "layer" }), "");
  assert.notEqual(errorsOf({ ...EXAMPLES.step, kind: "partial" }), "");
  assert.notEqual(
    errorsOf(withField(EXAMPLES.run_start, ["plan", "kind", "1"], "skip")),
    "",
  );
});

Deno.test("run_end carries error exactly when its status is error", () => {
  const { error: _error, ...ok } = EXAMPLES.run_end;
  assert.equal(errorsOf({ ...ok, status: "ok" }), "");
  assert.equal(errorsOf({ ...ok, status: "interrupted" }), "");
  assert.notEqual(
    errorsOf({ ...ok, status: "error" }),
    "",
    "error status without a message",
  );
  assert.notEqual(
    errorsOf({ ...EXAMPLES.run_end, status: "ok" }),
    "",
    "ok status with a message",
  );
  assert.notEqual(errorsOf({ ...ok, status: "failed" }), "");
});

Deno.test("cache patterns are strings of H and M only; nullable image fields accept null", () => {
  assert.notEqual(errorsOf({ ...EXAMPLES.cache, attn: "MHX" }), "");
  assert.notEqual(errorsOf({ ...EXAMPLES.cache, mlp: [1, 0] }), "");
  assert.equal(
    errorsOf({
      ...EXAMPLES.image,
      class: null,
      class_name: null,
      prompt: "a red fox",
    }),
    "",
  );
  assert.notEqual(errorsOf({ ...EXAMPLES.image, class: 1.5 }), "");
  assert.equal(
    errorsOf(withField(EXAMPLES.run_end, ["totals", "speedup_estimate"], null)),
    "",
  );
});

Deno.test("every event of a simulated run validates, in order run_start ... run_end", () => {
  const events = collectRun({ steps: 10, blocks: 4, images: 2 });
  for (const e of events) assert.equal(errorsOf(e), "", JSON.stringify(e));
  assert.equal(events[0].event, "run_start");
  assert.equal(events.at(-1)!.event, "run_end");
  assert.ok(events.every((e) => e.run_id === "sim"));
  const times = events.map((e) => e.time_ms);
  assert.deepEqual(
    times,
    [...times].sort((a, b) => a - b),
    "time_ms never goes back",
  );
});
