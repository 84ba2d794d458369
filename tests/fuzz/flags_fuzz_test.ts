/**
 * Fuzz target: the command line parser, every command of `fora` as buildProgram() (cli/main.ts)
 * builds it, run in-process with commander's exitOverride and its output silenced, and each
 * command's action replaced by one that records the parsed options (so nothing loads a model).
 * Argument lists mix the command's own flags, hostile values (negative, fractional, huge,
 * hexadecimal, NaN, empty, padded) and stray words. A parse either ends in the action with
 * options that keep their contracts (counts are whole numbers >= 1, seeds whole and safe,
 * guidance finite and >= 1, a shard inside its count, choices among their choices), or throws
 * commander's own usage error; never anything else.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { type Command, CommanderError } from "@commander-js/extra-typings";
import { buildProgram } from "../../cli/main.ts";
import { fuzz } from "./fuzz.ts";

interface Parsed {
  command: string;
  opts: Record<string, unknown>;
}

const silent = { writeOut() {}, writeErr() {}, outputError() {} };

/** A fresh program whose commands record their options instead of running. */
function instrumented(): { program: ReturnType<typeof buildProgram>; parsed: Parsed[] } {
  const program = buildProgram();
  const parsed: Parsed[] = [];
  program.configureOutput(silent);
  for (const sub of program.commands as unknown as Command[]) {
    sub.configureOutput(silent);
    (sub as unknown as { action(fn: (...args: unknown[]) => void): void }).action((...args) => {
      const cmd = args.at(-1) as Command;
      parsed.push({ command: sub.name(), opts: cmd.opts() as Record<string, unknown> });
    });
  }
  return { program, parsed };
}

const probe = buildProgram();
const COMMANDS = (probe.commands as unknown as Command[]).map((c) => ({
  name: c.name(),
  flags: c.options.flatMap((o) => [o.long, o.short].filter((f): f is string => typeof f === "string")),
}));

const value = fc.oneof(
  fc.constantFrom(
    "0",
    "1",
    "2",
    "3",
    "7",
    "250",
    "-1",
    "1.5",
    "1e3",
    "0x10",
    "NaN",
    "Infinity",
    "-0",
    "",
    " ",
    " 3",
    "3 ",
    "+4",
    "9007199254740993",
    "99999999999999999999",
    "1/2",
    "0/1",
    "2/2",
    "3/2",
    "-1/2",
    "a/b",
    "1/0",
    "fp16",
    "fp32",
    "int8",
    "fp32,int8",
    "all",
    "ref",
    "ddim",
    "ddpm",
    "dpm-solver++",
    "iddpm",
    "heun",
    "cpu",
    "cuda",
    "auto",
    "on",
    "off",
    "x.npz",
    "/tmp",
    "--",
    "-",
    "=",
  ),
  fc.string({ maxLength: 8 }),
  fc.integer({ min: -5, max: 1_000_000 }).map(String),
  fc.double({ noNaN: false }).map(String),
);

const argv = fc.constantFrom(...COMMANDS, { name: "no-such-command", flags: ["--x"] }).chain((cmd) =>
  fc.array(
    fc.oneof(
      { arbitrary: fc.constantFrom(...cmd.flags), weight: 4 },
      { arbitrary: value, weight: 4 },
      { arbitrary: fc.constantFrom("--help", "-h", "--version", "--no-such-flag", "-Z"), weight: 1 },
      { arbitrary: fc.constantFrom(...cmd.flags).chain((f) => value.map((v) => `${f}=${v}`)), weight: 1 },
    ),
    { maxLength: 10 },
  ).map((rest) => [cmd.name, ...rest])
);

const COUNTS = ["steps", "cacheInterval", "batch", "threads", "num", "samples", "maxReuse", "sketchDim"];

function checkContracts({ command, opts }: Parsed, args: string[]): void {
  const where = `${args.join(" ")} -> ${JSON.stringify(opts)}`;
  for (const key of COUNTS) {
    if (opts[key] !== undefined) assert.ok(Number.isSafeInteger(opts[key]) && (opts[key] as number) >= 1, `${key}: ${where}`);
  }
  if (opts.seed !== undefined) assert.ok(Number.isSafeInteger(opts.seed) && (opts.seed as number) >= 0, `seed: ${where}`);
  if (opts.cfg !== undefined) assert.ok(Number.isFinite(opts.cfg) && (opts.cfg as number) >= 1, `cfg: ${where}`);
  if (opts.shard !== undefined) {
    const s = opts.shard as { index: number; count: number };
    assert.ok(Number.isSafeInteger(s.index) && s.index >= 0 && s.index < s.count, `shard: ${where}`);
  }
  if (opts.precision !== undefined) {
    const p = opts.precision;
    const precision = (x: unknown) => x === "fp32" || x === "fp16" || x === "int8";
    assert.ok(precision(p) || (Array.isArray(p) && p.every(precision)), `precision: ${where}`);
  }
  if (opts.cfgChannels !== undefined) assert.ok(["ref", "all"].includes(opts.cfgChannels as string), `cfg-channels: ${where}`);
  if (opts.device !== undefined) assert.ok(["auto", "cpu", "cuda", "webgpu"].includes(opts.device as string), `device: ${where}`);
  if (command === "sample" || command === "generate") {
    assert.ok(Array.isArray(opts.class) && (opts.class as unknown[]).every((c) => typeof c === "string"), `class: ${where}`);
  }
}

Deno.test("fuzz: every command's flag parser yields options within their contracts or commander's usage error", async () => {
  await fuzz(argv, async (args) => {
    const { program, parsed } = instrumented();
    try {
      await program.parseAsync(args, { from: "user" });
    } catch (e) {
      if (!(e instanceof CommanderError)) {
        assert.fail(
          `not a usage error: ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e)}\nargs: ${JSON.stringify(args)}`,
        );
      }
      assert.ok(e.exitCode === 0 || e.exitCode === 1, `exit code ${e.exitCode}`);
      assert.equal(parsed.length, 0, "no action ran after a usage error");
      return "rejected";
    }
    assert.equal(parsed.length, 1, `one action ran for ${JSON.stringify(args)}`);
    checkContracts(parsed[0], args);
    return "accepted";
  });
});
