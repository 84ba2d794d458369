/** fora's version, read from deno.json so that there is exactly one place to bump it. */
import denoJson from "../../deno.json" with { type: "json" };

export const FORA_VERSION: string = denoJson.version;
