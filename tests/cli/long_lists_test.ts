/**
 * Lists too long for a command line: ONNX Runtime crashes when the command line passes about
 * 28,800 bytes (lib/runtime/command_line.ts), so fora refuses one past its limit before
 * ONNX Runtime starts (exit 2, one line naming the way out), and takes prompts and classes
 * from files (`--prompt-file`, `--class-file`) and classes as comma lists.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { convertAnyBundle } from "../../lib/bundle/convert.ts";
import type { ImageEvent } from "../../lib/events/types.ts";
import { commandLineBytes, MAX_COMMAND_LINE_BYTES } from "../../lib/runtime/command_line.ts";
import { splitClassList } from "../../cli/class_list.ts";
import { FIXTURES } from "../bundle/helpers.ts";
import { eventsOf, runFora, tinyBundle, workDir } from "../sample/helpers.ts";

const WORK = await workDir("fora-long-lists-");
const TINY = await tinyBundle(WORK);
const PIXART = join(WORK, "pixart");
await convertAnyBundle(join(FIXTURES, "pixart-tiny", "diffusers"), PIXART, { precisions: ["fp32"] });

const TOO_LONG =
  /^error: the command line is about \d+ bytes, more than ONNX Runtime can start with .*--prompt-file FILE.*--class-file FILE/;

Deno.test("a command line too long for ONNX Runtime (3,000 --class flags, a 30,000-character prompt): exit 2 before it starts", async () => {
  const classes = Array.from({ length: 3000 }, () => ["--class", "3"]).flat();
  const dit = await runFora("generate", "-m", TINY, "--steps", "3", "-o", join(WORK, "never-dit"), ...classes);
  assert.equal(dit.code, 2, dit.stderr.slice(-300));
  assert.match(dit.stderr, TOO_LONG);
  assert.equal(dit.stderr.split("\n").length, 2, "one line");

  const pixart = await runFora("generate", "-m", PIXART, "--steps", "3", "-o", join(WORK, "never-pixart"), "--prompt", "a".repeat(30_000));
  assert.equal(pixart.code, 2, pixart.stderr.slice(-300));
  assert.match(pixart.stderr, TOO_LONG);
});

Deno.test("the command line is counted in bytes, NULs included, and the limit is below ONNX Runtime's crash", () => {
  const base = commandLineBytes([]);
  assert.equal(commandLineBytes(["ab", "é"]), base + 3 + 3);
  assert.ok(MAX_COMMAND_LINE_BYTES < 28_700);
});

Deno.test("--class-file and comma lists add classes in order; --class 1,2 is two classes", async () => {
  const file = join(WORK, "classes.txt");
  await Deno.writeTextFile(file, "3\r\n\n 7 \n");
  const r = await runFora(
    "generate",
    "-m",
    TINY,
    "--steps",
    "3",
    "--json",
    "-o",
    join(WORK, "classes"),
    "--class",
    "1,2",
    "--class-file",
    file,
  );
  assert.equal(r.code, 0, r.stderr);
  const images = eventsOf(r.stdout).filter((e): e is ImageEvent => e.event === "image");
  assert.deepEqual(images.map((e) => e.class), [1, 2, 3, 7]);

  const sampled = await runFora(
    "sample",
    "-m",
    TINY,
    "--num",
    "4",
    "--batch",
    "4",
    "--steps",
    "3",
    "--json",
    "-o",
    join(WORK, "s"),
    "--class",
    "4,5",
    "--class-file",
    file,
  );
  assert.equal(sampled.code, 0, sampled.stderr);
  const run = JSON.parse(await Deno.readTextFile(join(WORK, "s", "fora-sample.json")));
  assert.deepEqual(run.settings.classes, [4, 5, 3, 7]);
});

Deno.test("a class name with commas is one class; anything else is split at its commas", () => {
  const names = ["tench, Tinca tinca", "goldfish", "sandal"];
  assert.deepEqual(splitClassList(["Tench, Tinca tinca", "1, 2", "sandal,goldfish", "0"], names), [
    "Tench, Tinca tinca",
    "1",
    "2",
    "sandal",
    "goldfish",
    "0",
  ]);
  assert.deepEqual(splitClassList(["3,x"], null), ["3", "x"]);
});

Deno.test("--prompt-file gives one prompt per line", async () => {
  const file = join(WORK, "prompts.txt");
  await Deno.writeTextFile(file, "a red fox\n\na small cactus, smiling\n");
  const r = await runFora(
    "generate",
    "-m",
    PIXART,
    "--steps",
    "3",
    "-N",
    "1",
    "--json",
    "-o",
    join(WORK, "prompts"),
    "--prompt-file",
    file,
  );
  assert.equal(r.code, 0, r.stderr);
  const images = eventsOf(r.stdout).filter((e): e is ImageEvent => e.event === "image");
  assert.deepEqual(images.map((e) => e.prompt), ["a red fox", "a small cactus, smiling"]);
});

Deno.test("list files that are missing, not regular files, empty or not UTF-8: exit 2, one line naming the flag", async () => {
  const empty = join(WORK, "empty.txt"), binary = join(WORK, "binary.txt");
  await Deno.writeTextFile(empty, "\n  \n");
  await Deno.writeFile(binary, new Uint8Array([0x33, 0xff, 0x0a]));
  const cases: [string[], string][] = [
    [["--class-file", join(WORK, "nope.txt")], `--class-file ${join(WORK, "nope.txt")}: cannot read it: no such file`],
    [["--class-file", "/dev/zero"], "--class-file /dev/zero: not a regular file"],
    [["--class-file", empty], `--class-file ${empty}: holds no entries; give one per line`],
    [["--class-file", binary], `--class-file ${binary}: not UTF-8 text`],
    [["-m", PIXART, "--prompt-file", WORK], `--prompt-file ${WORK}: not a regular file`],
  ];
  for (const [args, says] of cases) {
    const r = await runFora("generate", "-m", TINY, "--steps", "3", "-o", join(WORK, "never"), ...args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.ok(r.stderr.startsWith(`error: ${says}`) && r.stderr.indexOf("\n") === r.stderr.length - 1, r.stderr);
  }
});
