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
/** A latent's height and width in latent pixels (PixArt's graphs take non-square ones). */
export interface LatentSize {
  height: number;
  width: number;
}
/** The trained (square) latent size, which the graphs use unless told another. */
export function trainedLatent(c: Pick<PatchGrid, "inputSize">): LatentSize {
  return { height: c.inputSize, width: c.inputSize };
}
/** Rows and columns of patches over `latent`; its sides must be multiples of the patch size. */
export function patchRows(c: Pick<PatchGrid, "patchSize">, latent: LatentSize): { rows: number; cols: number } {
  if (latent.height % c.patchSize !== 0 || latent.width % c.patchSize !== 0) {
    throw new Error(`latent ${latent.height}x${latent.width} is not a multiple of the patch size ${c.patchSize}`);
  }
  return { rows: latent.height / c.patchSize, cols: latent.width / c.patchSize };
}
/** Tokens of the trained square grid, or of `latent` when given. */
export function numTokens(c: Pick<PatchGrid, "inputSize" | "patchSize">, latent?: LatentSize): number {
  if (!latent) return gridSize(c) ** 2;
  const { rows, cols } = patchRows(c, latent);
  return rows * cols;
}
