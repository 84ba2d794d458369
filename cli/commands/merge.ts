/** `fora merge DIR... --out FILE.npz`: the shards of one `fora sample` run, joined in image order. */
import { Command } from "@commander-js/extra-typings";
import { merge } from "../../lib/sample/merge.ts";
import { printLine } from "../../lib/events/output.ts";
import { pathArg } from "../sampling_options.ts";

export function mergeCommand() {
  return new Command("merge")
    .summary("join the shard folders of a fora sample run into one .npz")
    .description(
      "Join the shard folders of one `fora sample` run into one .npz in image order: arr_0 uint8 " +
        "[num, H, W, C] and arr_1 int64 labels [num], the layout the ADM evaluation suite and DiT's " +
        "sample_ddp.py use. Every shard must be present once and complete, all with the same " +
        "settings; every batch file is checked against its recorded sha256s. Nothing is written " +
        "unless the whole set is consistent.",
    )
    .argument("<dirs...>", "the shard folders (fora sample --out), in any order")
    .requiredOption("-o, --out <file.npz>", "the merged file", pathArg("--out"))
    .option("--force", "replace --out if it exists")
    .addHelpText(
      "after",
      `
Example:
  fora merge samples/shard-* --out samples-50k.npz
  python evaluator.py VIRTUAL_imagenet256_labeled.npz samples-50k.npz   # ADM's evaluation suite`,
    )
    .action(async (dirs, opts) => {
      const r = await merge(dirs, opts.out, { force: opts.force ?? false });
      printLine(
        `merged ${r.images} images from ${r.shards} shard${r.shards === 1 ? "" : "s"} into ${r.out} ` +
          `(arr_0 uint8 [${r.shape.join(", ")}], arr_1 int64 labels [${r.images}])`,
      );
    });
}
