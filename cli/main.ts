/**
 * The `fora` command line. Exit codes: 0 success; 1 a ForaError (bad weights, a broken
 * bundle, ...), printed as one `error: <message>` line; 2 a usage error (unknown
 * command or option, missing argument); 70 a bug in fora, printed with its stack.
 *
 * Subcommands import only what they need: nothing here loads ONNX Runtime's native
 * library unless a command runs a model.
 */
import { Command, CommanderError } from "@commander-js/extra-typings";
import { interruptedExitCode, isForaError, isInterrupted, printable, withoutPermissionAdvice } from "../lib/errors.ts";
import { isOutputClosed, writeStdout } from "../lib/events/output.ts";
import { FORA_VERSION } from "../lib/bundle/version.ts";
import { convertCommand } from "./commands/convert.ts";
import { infoCommand } from "./commands/info.ts";
import { generateCommand } from "./commands/generate.ts";
import { sampleCommand } from "./commands/sample.ts";
import { mergeCommand } from "./commands/merge.ts";
import { evalCommand } from "./commands/eval.ts";
import { profileCommand } from "./commands/profile.ts";
import { similarityCommand } from "./commands/similarity.ts";

export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;
export const EXIT_BUG = 70;

export function buildProgram() {
  const program = new Command("fora")
    .description(
      "Faster diffusion transformers (DiT) with FORA feature caching, over ONNX Runtime.\n\n" +
        "Start by converting a checkpoint folder into a bundle, then inspect it:\n" +
        "  fora convert <model-folder> <bundle-folder>\n" +
        "  fora info <bundle-folder>",
    )
    .version(FORA_VERSION, "-V, --version", "print fora's version")
    .helpOption("-h, --help", "show help (also: fora <command> --help)");
  program.addCommand(convertCommand());
  program.addCommand(infoCommand());
  program.addCommand(generateCommand());
  program.addCommand(sampleCommand());
  program.addCommand(mergeCommand());
  program.addCommand(evalCommand());
  program.addCommand(profileCommand());
  program.addCommand(similarityCommand());
  program.addHelpText(
    "after",
    `
Exit status: 0 ok, 1 error (message on stderr), 2 usage error, 70 internal bug.
Docs: README.md in the fora repository.`,
  );
  // addCommand does not copy settings from the parent: give each subcommand the same handling.
  // Help and --version go to stdout through writeStdout, as every command's output does, so a
  // closed pipe ends quietly and a failed write (`> /dev/full`) is one error line.
  for (const command of [program, ...program.commands]) {
    command.exitOverride().showHelpAfterError("(add --help for usage)").configureOutput({ writeOut: writeStdout });
  }
  return program;
}

/** Runs the CLI on `args` (without the program name) and returns the exit status. */
export async function main(args: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(args, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander has already printed help, the version, or its own "error: ..." line.
      return e.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    // The reader of our stdout went away (`fora generate --json | head -1`): stop quietly.
    if (isOutputClosed(e)) return 0;
    if (isInterrupted(e)) {
      console.error(`fora: ${e.message}; no partial files were written`);
      return interruptedExitCode(e);
    }
    if (isForaError(e)) {
      // Messages quote files and flags (paths, manifest strings, class names): never let their
      // control characters (terminal escape sequences) reach the terminal. Line breaks that a
      // message has on purpose (device diagnostics) are kept.
      console.error(`error: ${e.message.split("\n").map(printable).join("\n")}`);
      return e.code === "usage" ? EXIT_USAGE : EXIT_ERROR;
    }
    // A device or system file that no message names yet (withoutPermissionAdvice): the user's path, not a bug.
    if (e instanceof Deno.errors.NotCapable) {
      console.error(`error: ${printable(withoutPermissionAdvice(e.message))}`);
      return EXIT_ERROR;
    }
    console.error("error: internal error, a bug in fora; please report it with this output:");
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    return EXIT_BUG;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
