/** A kernel failure is reported once, by fora, as an error: ONNX Runtime's own coloured log line stays off stderr. */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

Deno.test("a kernel that fails at run time: the error names it, and stderr gets no ONNX Runtime log line", async () => {
  const script = fileURLToPath(new URL("./fixtures/kernel_failure.ts", import.meta.url));
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-q", "--allow-read", "--allow-write", "--allow-env", "--allow-ffi", "--allow-sys", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout), err = new TextDecoder().decode(stderr);
  assert.equal(code, 0, err);
  assert.match(out, /^running .*reshape\.onnx failed: Non-zero status code returned while running Reshape node/);
  assert.equal(err, "", "nothing from ONNX Runtime's logger (it writes ANSI colour codes)");
});
