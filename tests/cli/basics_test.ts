import assert from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import { lines, runFora } from "./run.ts";

Deno.test("fora --help lists the commands and how to start", async () => {
  const r = await runFora("--help");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Usage: fora/);
  assert.match(r.stdout, /convert \[options\] <src> <dst>/);
  assert.match(r.stdout, /info \[options\] <bundle>/);
  assert.match(r.stdout, /Exit status/);
});

Deno.test("fora --version prints the version from deno.json", async () => {
  for (const flag of ["--version", "-V"]) {
    const r = await runFora(flag);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), denoJson.version);
  }
});

Deno.test("fora convert --help explains both folder kinds and gives an example", async () => {
  const r = await runFora("convert", "--help");
  assert.equal(r.code, 0, r.stderr);
  for (const s of ["<src>", "<dst>", "model_index.json", "model.safetensors", "--force", "--precision", "Examples:"]) {
    assert.ok(r.stdout.includes(s), `convert --help lacks ${s}:\n${r.stdout}`);
  }
});

Deno.test("fora info --help documents --json", async () => {
  const r = await runFora("info", "--help");
  assert.equal(r.code, 0, r.stderr);
  for (const s of ["<bundle>", "--json", "--verify", "Examples:"]) {
    assert.ok(r.stdout.includes(s), `info --help lacks ${s}:\n${r.stdout}`);
  }
});

Deno.test("usage errors exit 2 with commander's message", async () => {
  const cases: [string[], RegExp][] = [
    [["frobnicate"], /unknown command 'frobnicate'/],
    [["convert", "only-one-arg"], /missing required argument 'dst'/],
    [["info"], /missing required argument 'bundle'/],
    [["info", "x", "--bogus"], /unknown option '--bogus'/],
    [["convert", "a", "b", "--precision", "fp8"], /"fp8" is not a precision/],
  ];
  for (const [args, pattern] of cases) {
    const r = await runFora(...args);
    assert.equal(r.code, 2, `fora ${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
    assert.match(lines(r.stderr)[0], /^error: /);
    assert.match(r.stderr, pattern);
  }
});

Deno.test("fora with no command shows help and exits 2", async () => {
  const r = await runFora();
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Usage: fora/);
});
