/**
 * The latent geometry every patch-based diffusion transformer shares (DiT, PixArt-alpha):
 * a C-channel latent of side `inputSize` cut into patches of side `patchSize`, one token each;
 * with learned sigma the model outputs 2C channels (eps, then the variance values).
 */
export interface PatchGrid {
  inChannels: number;
  /** Latent side length (the latent is inChannels x inputSize x inputSize). */
  inputSize: number;
  patchSize: number;
  learnSigma: boolean;
}

/** A patch transformer's size: its blocks, width and heads over the grid. */
export interface TransformerShape extends PatchGrid {
  depth: number;
  hiddenSize: number;
  numHeads: number;
}

export function outChannels(c: Pick<PatchGrid, "inChannels" | "learnSigma">): number {
  return c.learnSigma ? 2 * c.inChannels : c.inChannels;
}
export function gridSize(c: Pick<PatchGrid, "inputSize" | "patchSize">): number {
  return c.inputSize / c.patchSize;
}
export function numTokens(c: Pick<PatchGrid, "inputSize" | "patchSize">): number {
  return gridSize(c) ** 2;
}
