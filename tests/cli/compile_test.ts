/**
 * `deno task compile` (tools/compile.ts). Where Deno's runtime base binary (denort)
 * cannot be downloaded, as on machines without internet access, the task must fail
 * with one plain message; where it can, the binary must run.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import denoJson from "../../deno.json" with { type: "json" };
import { DENORT_MESSAGE, isDenortFailure } from "../../tools/compile.ts";
import { ROOT, withTempDir } from "../bundle/helpers.ts";
import { lines } from "./run.ts";

const DOWNLOAD_FAILURE = `\x1b[0m\x1b[32mCompile\x1b[0m cli/main.ts to dist/fora
\x1b[0m\x1b[32mDownload\x1b[0m https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip
\x1b[0m\x1b[1m\x1b[31merror\x1b[0m: Writing deno compile executable to temporary file '/x/dist/fora.tmp-9189c55cd58dc3c2'

Caused by:
    0: Setting up base binary.
    1: error sending request for url (https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip): client error (Connect): dns error: failed to lookup address information: Name or service not known
`;

Deno.test("compile: a denort download failure is recognised, other failures are not", () => {
  assert.equal(isDenortFailure(DOWNLOAD_FAILURE), true);
  assert.equal(isDenortFailure("error: TS2322 [ERROR]: Type 'string' is not assignable to type 'number'."), false);
  assert.equal(isDenortFailure(""), false);
});

Deno.test("compile: builds a working binary, or says plainly why it cannot", async () => {
  await withTempDir(async (tmp) => {
    const output = join(tmp, "fora");
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-write", "--allow-env", "--allow-run", join(ROOT, "tools", "compile.ts"), "--output", output],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(r.stderr);
    if (r.code !== 0) {
      assert.equal(r.code, 1);
      assert.equal(lines(stderr).at(-1), DENORT_MESSAGE, stderr);
      console.log(`  deno compile cannot run on this machine: ${DENORT_MESSAGE}`);
      return;
    }
    const v = await new Deno.Command(output, { args: ["--version"], stdout: "piped" }).output();
    assert.equal(v.code, 0);
    assert.equal(new TextDecoder().decode(v.stdout).trim(), denoJson.version);
  });
});
