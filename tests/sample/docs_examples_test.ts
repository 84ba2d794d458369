/**
 * The cluster examples in docs/examples run as shipped: the Slurm array script under bash with
 * the variables Slurm sets, and the Kubernetes Indexed Job's shard script under sh with the
 * variable Kubernetes sets, each for both shards of a two-shard run on the tiny bundle; the
 * shards then merge into the same file as one unsharded run.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "../bundle/helpers.ts";
import { CLI, runFora, tinyBundle, workDir } from "./helpers.ts";

const WORK = await workDir("fora-docs-examples-test-");
const BUNDLE = await tinyBundle(WORK);
const FLAGS = "--batch 4 --steps 6 --cfg 1.5 --seed 3";
const fora = [Deno.execPath(), ...CLI].join(" ");

async function sh(shell: string, args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(shell, { args, env: { ...env, NO_COLOR: "1" }, cwd: ROOT, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function reference(): Promise<Uint8Array> {
  const dir = join(WORK, "unsharded");
  const r = await runFora("sample", "-m", BUNDLE, "--num", "10", ...FLAGS.split(" "), "--json", "-o", dir);
  assert.equal(r.code, 0, r.stderr);
  const m = await runFora("merge", dir, "--out", join(WORK, "unsharded.npz"));
  assert.equal(m.code, 0, m.stderr);
  return await Deno.readFile(join(WORK, "unsharded.npz"));
}
const expected = reference();

Deno.test("docs/examples/fora-sample.slurm: two array tasks sample their shards; merged they equal an unsharded run", async () => {
  const out = join(WORK, "slurm");
  for (const id of ["0", "1"]) {
    const r = await sh("bash", [join(ROOT, "docs/examples/fora-sample.slurm")], {
      SLURM_ARRAY_TASK_ID: id,
      SLURM_ARRAY_TASK_COUNT: "2",
      FORA: fora,
      BUNDLE,
      OUT: out,
      NUM: "10",
      FLAGS,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /"event":"run_end".*"status":"ok"/);
  }
  const m = await runFora("merge", join(out, "shard-0"), join(out, "shard-1"), "--out", join(out, "merged.npz"));
  assert.equal(m.code, 0, m.stderr);
  assert.deepEqual(await Deno.readFile(join(out, "merged.npz")), await expected);
  // Outside an array job it stops at once, saying why.
  const bare = await sh("bash", [join(ROOT, "docs/examples/fora-sample.slurm")], { FORA: fora, BUNDLE, OUT: out });
  assert.notEqual(bare.code, 0);
  assert.match(bare.stderr, /submit with sbatch/);
});

Deno.test("docs/examples/fora-sample-job.yaml: the Indexed Job's shard script, run per completion index, merges to the unsharded run", async () => {
  const yaml = await Deno.readTextFile(join(ROOT, "docs/examples/fora-sample-job.yaml"));
  const m = /\n( +)# --- shard script[^\n]*\n([\s\S]*?)\n +# --- end of shard script ---/.exec(yaml);
  assert.ok(m, "the YAML marks its shard script");
  const script = m[2].split("\n").map((l) => l.slice(m[1].length)).join("\n");
  assert.match(yaml, /completionMode: Indexed/);
  assert.match(yaml, /completions: 8[\s\S]*name: SHARDS\n\s+value: "8"/, "SHARDS matches completions");
  const out = join(WORK, "k8s");
  for (const index of ["0", "1"]) {
    // `fora` as an installed command would be: a function stands in for it.
    const r = await sh("sh", ["-c", `fora() { ${fora} "$@"; }\n${script.replace("exec fora", "fora")}`], {
      JOB_COMPLETION_INDEX: index,
      SHARDS: "2",
      NUM: "10",
      BUNDLE,
      OUT: out,
      FLAGS,
    });
    assert.equal(r.code, 0, r.stderr);
  }
  const merged = await runFora("merge", join(out, "shard-1"), join(out, "shard-0"), "--out", join(out, "merged.npz"));
  assert.equal(merged.code, 0, merged.stderr);
  assert.deepEqual(await Deno.readFile(join(out, "merged.npz")), await expected);
});
