/** `fora info BUNDLE`: what a bundle holds. */
import { Command } from "@commander-js/extra-typings";
import { bundleInfo, formatInfo } from "../../lib/bundle/info.ts";
import { readAnyManifest } from "../../lib/bundle/read.ts";
import { formatPixartInfo, pixartInfo } from "../../lib/bundle/pixart_info.ts";
import { printLine } from "../../lib/events/output.ts";

export function infoCommand(): Command<[string], { json?: true; verify?: true }> {
  return new Command("info")
    .summary("show what a bundle holds")
    .description(
      "Show what a bundle holds: the model (architecture, config, parameter count), its VAE if " +
        "any, the ONNX graph files and the weight bytes. Checks that every file the manifest lists " +
        "is present with its recorded size; --verify also re-checks each file's sha256.",
    )
    .argument("<bundle>", "bundle folder written by fora convert")
    .option("--json", "print one JSON object instead of the table (for scripts)")
    .option("--verify", "re-hash every file and compare with manifest.json (reads all weights)")
    .addHelpText(
      "after",
      `
Examples:
  fora info /tmp/tiny-bundle
  fora info /tmp/tiny-bundle --json | jq .parameters`,
    )
    .action(async (bundle, opts) => {
      const m = await readAnyManifest(bundle);
      if (m.architecture === "pixart") {
        const info = await pixartInfo(bundle, m, { verify: opts.verify });
        printLine(opts.json ? JSON.stringify(info, null, 2) : formatPixartInfo(info));
        return;
      }
      const info = await bundleInfo(bundle, { verify: opts.verify });
      printLine(opts.json ? JSON.stringify(info, null, 2) : formatInfo(info));
    });
}
