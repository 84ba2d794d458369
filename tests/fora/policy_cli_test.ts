/**
 * `fora generate --policy ...` end to end on the tiny DiT: every policy's NDJSON stream
 * is valid against the event schema, run_start names the policy and its parameters,
 * the step and cache events show each decision as static FORA's do, and flag
 * combinations that make no sense are refused with a message naming the flag.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import schema from "../../lib/events/schema.json" with { type: "json" };
import type { CacheEvent, ForaEvent, RunStartEvent, StepEvent } from "../../lib/events/types.ts";
import { copyTree, TINY_DIFFUSERS } from "../bundle/helpers.ts";
import { lines, runFora } from "../cli/run.ts";

const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);

Deno.test("generate --policy: valid events for every policy, decisions in step and cache events, refused combinations", async (t) => {
  const work = await Deno.makeTempDir({ prefix: "fora-policy-cli-" });
  try {
    const bundle = join(work, "bundle");
    const c = await runFora("convert", TINY_DIFFUSERS, bundle, "-q");
    assert.equal(c.code, 0, c.stderr);
    const gen = async (...flags: string[]) => {
      const r = await runFora("generate", "-m", bundle, "--sampler", "ddim", "--steps", "12", "--json", "-o", join(work, "out"), ...flags);
      assert.equal(r.code, 0, r.stderr);
      const events = lines(r.stdout).map((l) => JSON.parse(l) as ForaEvent);
      for (const e of events) assert.ok(validate(e), `${JSON.stringify(validate.errors)} in ${JSON.stringify(e)}`);
      return {
        start: events.find((e) => e.event === "run_start") as RunStartEvent,
        steps: events.filter((e) => e.event === "step") as StepEvent[],
        cache: events.filter((e) => e.event === "cache") as CacheEvent[],
      };
    };
    await t.step('dynamic: undecided steps planned as "decide", decisions in the step events', async () => {
      const r = await gen("--policy", "dynamic", "--threshold", "0.5", "--warmup", "2", "--cooldown", "1", "--max-reuse", "3");
      assert.equal(r.start.plan.policy.name, "dynamic");
      assert.deepEqual(r.start.plan.policy.params, { threshold: 0.5, lookahead: 3, warmup: 2, cooldown: 1, max_reuse: 3 });
      assert.deepEqual(r.start.plan.kind.slice(0, 2), ["full", "full"]);
      assert.equal(r.start.plan.kind[11], "full");
      assert.ok(r.start.plan.kind.slice(2, 11).every((k) => k === "decide"));
      assert.equal(r.start.flags.policy, "dynamic");
      assert.equal(r.steps.length, 12);
      assert.ok(r.steps.some((s) => s.kind === "reuse"), "some steps reused");
      // Each step after the first carries the indicator it was decided on; reuse steps stayed below the threshold.
      assert.ok(r.steps.slice(1).every((s) => typeof s.indicator === "number"));
      for (const s of r.steps.filter((s) => s.kind === "reuse")) assert.ok(s.indicator! < 0.5);
      for (const [i, s] of r.steps.entries()) assert.equal(r.cache[i].attn, s.kind === "reuse" ? "HH" : "MM");
    });
    await t.step("partial: reuse steps compute the last block (cache string HM)", async () => {
      const r = await gen("--policy", "partial", "-N", "3", "--compute-last", "1");
      assert.deepEqual(r.start.plan.policy, { name: "partial", params: { interval: 3, compute_last: 1 } });
      for (const [i, s] of r.steps.entries()) assert.equal(r.cache[i].mlp, s.kind === "reuse" ? "HM" : "MM");
    });
    await t.step("partial --compute-first: reuse steps compute the first block (cache string MH)", async () => {
      const r = await gen("--policy", "partial", "-N", "3", "--compute-first", "1");
      assert.deepEqual(r.start.plan.policy, { name: "partial", params: { interval: 3, compute_first: 1 } });
      for (const [i, s] of r.steps.entries()) assert.equal(r.cache[i].attn, s.kind === "reuse" ? "MH" : "MM");
    });
    await t.step("forecast: static FORA's plan", async () => {
      const r = await gen("--policy", "forecast", "-N", "3", "--cooldown", "2");
      assert.deepEqual(r.start.plan.policy, { name: "forecast", params: { interval: 3, order: 1, cooldown: 2 } });
      assert.deepEqual(r.steps.map((s) => s.kind), r.start.plan.kind);
      assert.deepEqual(r.start.plan.kind.slice(-2), ["full", "full"]);
    });
    await t.step("refused: --threshold without dynamic, -N with dynamic, --compute-last out of range", async () => {
      for (
        const [flags, message] of [
          [["--threshold", "0.2"], /--threshold applies to --policy dynamic only/],
          [["--policy", "dynamic", "-N", "2"], /leave out -N/],
          [["--policy", "partial", "--compute-last", "2"], /--compute-last must be a whole number from 1 to 1/],
          [["--policy", "schedule"], /--policy schedule needs --schedule/],
          [
            ["--policy", "partial", "--compute-first", "1", "--compute-last", "1"],
            /--compute-last.*--compute-first|--compute-first.*--compute-last/,
          ],
          [["--compute-first", "1"], /--compute-first applies to --policy partial only/],
        ] as const
      ) {
        const r = await runFora("generate", "-m", bundle, "--steps", "6", "-o", join(work, "bad"), ...flags);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, message);
      }
    });
    await t.step("a bundle without the partial graphs (converted before them) is refused before sampling", async () => {
      const old = join(work, "old-bundle");
      await copyTree(bundle, old);
      const manifest = JSON.parse(await Deno.readTextFile(join(old, "manifest.json")));
      manifest.dit.graphs = manifest.dit.graphs.filter((g: { kind: string }) => !g.kind.startsWith("partial"));
      await Deno.writeTextFile(join(old, "manifest.json"), JSON.stringify(manifest));
      const out = join(work, "old-out");
      const r = await runFora("generate", "-m", old, "--steps", "6", "--policy", "partial", "--json", "-o", out);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /no partial_full\/cfg\/fp32 DiT graph .*re-run fora convert/);
      assert.ok(!lines(r.stdout).some((l) => JSON.parse(l).event === "step"), "no step ran");
      const written = await Array.fromAsync(Deno.readDir(out)).catch(() => []);
      assert.deepEqual(written, [], "no file written");
    });
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("sample and profile take --policy: the run record keeps its parameters, profile shows the policy's graphs", async (t) => {
  const work = await Deno.makeTempDir({ prefix: "fora-policy-cmds-" });
  try {
    const bundle = join(work, "bundle");
    const c = await runFora("convert", TINY_DIFFUSERS, bundle, "-q");
    assert.equal(c.code, 0, c.stderr);
    await t.step("sample --policy dynamic: fora-sample.json names the policy; another threshold is another run", async () => {
      const out = join(work, "samples");
      const flags = ["--num", "4", "--batch", "2", "--sampler", "ddim", "--steps", "8", "--policy", "dynamic", "--warmup", "1"];
      const r = await runFora("sample", "-m", bundle, ...flags, "--threshold", "0.5", "--json", "-o", out);
      assert.equal(r.code, 0, r.stderr);
      const start = lines(r.stdout).map((l) => JSON.parse(l) as ForaEvent).find((e) => e.event === "run_start") as RunStartEvent;
      assert.ok(validate(start), JSON.stringify(validate.errors));
      assert.deepEqual(start.plan.policy, { name: "dynamic", params: { threshold: 0.5, lookahead: 4, warmup: 1 } });
      const record = JSON.parse(await Deno.readTextFile(join(out, "fora-sample.json")));
      assert.deepEqual(record.settings.plan, { policy: "dynamic", params: { threshold: 0.5, lookahead: 4, warmup: 1 }, kinds: "FDDDDDDD" });
      const other = await runFora("sample", "-m", bundle, ...flags, "--threshold", "0.2", "--json", "-o", out);
      assert.notEqual(other.code, 0);
      assert.match(other.stderr, /cache plan/);
    });
    await t.step("profile --policy partial: the partial graphs' phases, and the kinds as they ran", async () => {
      const r = await runFora("profile", "-m", bundle, "--steps", "7", "--policy", "partial", "-N", "3", "--json");
      assert.equal(r.code, 0, r.stderr);
      const rows = lines(r.stdout).map((l) => JSON.parse(l) as { kind: string; part: string; runs: number });
      const kinds = new Set(rows.map((x) => x.kind));
      assert.ok(kinds.has("partial_full") && kinds.has("partial_reuse"), [...kinds].join(", "));
      assert.ok(!kinds.has("full") && !kinds.has("reuse"), "the plain step graphs did not run");
      // 7 steps at N = 3: full at positions 0, 3, 6; the first run of each graph is left out as warm-up.
      assert.equal(rows.find((x) => x.kind === "partial_full" && x.part === "total")!.runs, 2);
      assert.equal(rows.find((x) => x.kind === "partial_reuse" && x.part === "total")!.runs, 3);
    });
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});
