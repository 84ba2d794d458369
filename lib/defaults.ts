/**
 * The models shipped in this repository (see models/README.md): the default DiT that
 * `fora generate` uses without --model, and the classifier `fora eval` scores with.
 */
import { fileURLToPath } from "node:url";

const MODELS: URL = new URL("../models/", import.meta.url);

export const DEFAULT_MODEL: string = fileURLToPath(new URL("fashion-dit-bundle", MODELS));
export const DEFAULT_CLASSIFIER: string = fileURLToPath(new URL("fashion-classifier", MODELS));
