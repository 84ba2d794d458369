/**
 * SentencePiece unigram models (`spiece.model`, the slow T5 tokenizer's file), read and run
 * as the sentencepiece library does: the normaliser's precompiled character map (a Darts
 * double-array trie over UTF-8 bytes, longest match wins), its whitespace rules, then the
 * best segmentation by Viterbi over the piece scores in float32, with runs of unknown
 * characters fused into one `<unk>`.
 */
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { ForaError } from "../errors.ts";

/** ModelProto.SentencePiece.Type. */
export const PieceType = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export interface SentencePieceModel {
  pieces: { piece: string; score: number; type: number }[];
  normalizer: {
    /** Empty for the identity normalisation. */
    charsmap: Uint8Array;
    addDummyPrefix: boolean;
    removeExtraWhitespaces: boolean;
    escapeWhitespaces: boolean;
  };
}

const UNIGRAM = 1;
const MODEL_TYPES: Record<number, string> = { 1: "unigram", 2: "BPE", 3: "word", 4: "char" };

/** Calls `onField` for each field of one message; unknown fields are skipped. */
function fields(bytes: Uint8Array, onField: (no: number, wire: WireType, r: BinaryReader) => boolean): void {
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, wire] = r.tag();
    if (!onField(no, wire, r)) r.skip(wire, no);
  }
}

/** Decodes a ModelProto; refuses what this encoder does not implement, naming it. */
export function parseSentencePieceModel(bytes: Uint8Array, where: string): SentencePieceModel {
  const model: SentencePieceModel = {
    pieces: [],
    normalizer: { charsmap: new Uint8Array(), addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true },
  };
  let modelType = UNIGRAM, byteFallback = false, suffixWhitespace = false;
  try {
    fields(bytes, (no, wire, r) => {
      if (wire !== WireType.LengthDelimited) return false;
      if (no === 1) {
        const p = { piece: "", score: 0, type: PieceType.normal as number };
        fields(r.bytes(), (f, w, pr) => {
          if (f === 1 && w === WireType.LengthDelimited) p.piece = pr.string();
          else if (f === 2 && w === WireType.Bit32) p.score = pr.float();
          else if (f === 3 && w === WireType.Varint) p.type = pr.int32();
          else return false;
          return true;
        });
        model.pieces.push(p);
      } else if (no === 2) {
        fields(r.bytes(), (f, w, tr) => {
          if (f === 3 && w === WireType.Varint) modelType = tr.int32();
          else if (f === 35 && w === WireType.Varint) byteFallback = tr.bool();
          else if (f === 24 && w === WireType.Varint) suffixWhitespace = tr.bool();
          else return false;
          return true;
        });
      } else if (no === 3) {
        const n = model.normalizer;
        fields(r.bytes(), (f, w, nr) => {
          if (f === 2 && w === WireType.LengthDelimited) n.charsmap = nr.bytes();
          else if (f === 3 && w === WireType.Varint) n.addDummyPrefix = nr.bool();
          else if (f === 4 && w === WireType.Varint) n.removeExtraWhitespaces = nr.bool();
          else if (f === 5 && w === WireType.Varint) n.escapeWhitespaces = nr.bool();
          else return false;
          return true;
        });
      } else return false;
      return true;
    });
  } catch (e) {
    throw new ForaError("bundle", `${where}: not a SentencePiece model (${(e as Error).message})`);
  }
  if (model.pieces.length === 0) throw new ForaError("bundle", `${where}: not a SentencePiece model (no pieces)`);
  if (modelType !== UNIGRAM) {
    throw new ForaError(
      "bundle",
      `${where}: a ${MODEL_TYPES[modelType] ?? `type ${modelType}`} SentencePiece model; fora reads unigram models (T5's)`,
    );
  }
  if (byteFallback) throw new ForaError("bundle", `${where}: byte_fallback models are not supported (T5's spiece.model has none)`);
  if (suffixWhitespace) {
    throw new ForaError("bundle", `${where}: treat_whitespace_as_suffix models are not supported (T5's spiece.model is prefix)`);
  }
  if (model.pieces.filter((p) => p.type === PieceType.unknown).length !== 1) {
    throw new ForaError("bundle", `${where}: a SentencePiece model needs exactly one unknown piece`);
  }
  return model;
}

interface TrieNode {
  next: Map<number, TrieNode>;
  id: number;
}

function buildTrie(entries: Iterable<[Uint8Array, number]>): TrieNode {
  const root: TrieNode = { next: new Map(), id: -1 };
  for (const [bytes, id] of entries) {
    let node = root;
    for (const b of bytes) {
      let child = node.next.get(b);
      if (!child) node.next.set(b, child = { next: new Map(), id: -1 });
      node = child;
    }
    node.id = id;
  }
  return root;
}

/** Byte length of the UTF-8 character led by `b` (1 for a stray continuation byte, as sentencepiece counts). */
function utf8Len(b: number): number {
  return b < 0xc0 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
}

const SPACE = 0x20;
const SPACE_SYMBOL = new TextEncoder().encode("\u2581");

/**
 * The precompiled charsmap: a little-endian u32 with the trie's byte size, the Darts
 * double-array units, then the replacement strings, each ended by a NUL.
 */
function charsmapLookup(blob: Uint8Array, where: string): (s: Uint8Array, at: number) => [Uint8Array, number] | null {
  if (blob.length === 0) return () => null;
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const trieBytes = blob.length >= 4 ? view.getUint32(0, true) : -1;
  if (trieBytes < 0 || trieBytes % 4 !== 0 || 4 + trieBytes > blob.length) {
    throw new ForaError("bundle", `${where}: the normaliser's precompiled_charsmap is malformed`);
  }
  const units = new Uint32Array(trieBytes / 4);
  for (let i = 0; i < units.length; i++) units[i] = view.getUint32(4 + 4 * i, true);
  const strings = blob.subarray(4 + trieBytes);
  // Darts unit fields: bit 8 says a value hangs off this node; the label keeps bit 31 so a
  // value unit never matches a byte; the offset is 21 bits, shifted 8 more when bit 9 is set.
  const offset = (u: number) => (u >>> 10) << ((u & 0x200) >>> 6);
  const label = (u: number) => (u & 0x800000ff) >>> 0;
  return (s, at) => {
    let pos = offset(units[0]);
    let bestLen = 0, bestValue = 0;
    for (let i = at; i < s.length; i++) {
      pos ^= s[i];
      const unit = units[pos];
      if (pos >= units.length || label(unit) !== s[i]) break;
      pos ^= offset(unit);
      if ((unit >>> 8) & 1) {
        bestLen = i + 1 - at;
        bestValue = units[pos] & 0x7fffffff;
      }
    }
    if (bestLen === 0) return null;
    let end = bestValue;
    while (end < strings.length && strings[end] !== 0) end++;
    return [strings.subarray(bestValue, end), bestLen];
  };
}

/** sentencepiece's Normalizer::Normalize, on UTF-8 bytes. */
function makeNormalizer(model: SentencePieceModel, userDefined: TrieNode, where: string): (text: string) => Uint8Array {
  const { addDummyPrefix, removeExtraWhitespaces, escapeWhitespaces } = model.normalizer;
  const lookup = charsmapLookup(model.normalizer.charsmap, where);
  const space = escapeWhitespaces ? SPACE_SYMBOL : Uint8Array.of(SPACE);
  // User-defined symbols pass through unnormalised, longest first.
  const prefix = (s: Uint8Array, at: number): [Uint8Array, number] => {
    let node: TrieNode | undefined = userDefined, len = 0;
    for (let i = at; i < s.length && (node = node.next.get(s[i])); i++) if (node.id >= 0) len = i + 1 - at;
    if (len > 0) return [s.subarray(at, at + len), len];
    const hit = lookup(s, at);
    if (hit) return hit;
    const n = Math.min(utf8Len(s[at]), s.length - at);
    return [s.subarray(at, at + n), n];
  };
  const encoder = new TextEncoder();
  return (text) => {
    const s = encoder.encode(text);
    const out: number[] = [];
    let at = 0;
    if (removeExtraWhitespaces) {
      while (at < s.length) {
        const [piece, n] = prefix(s, at);
        if (!(piece.length === 1 && piece[0] === SPACE)) break;
        at += n;
      }
    }
    if (at === s.length) return new Uint8Array();
    if (addDummyPrefix) out.push(...space);
    let prevSpace = removeExtraWhitespaces;
    while (at < s.length) {
      const [piece, n] = prefix(s, at);
      let k = 0;
      if (prevSpace) { while (k < piece.length && piece[k] === SPACE) k++; }
      if (k < piece.length) {
        for (; k < piece.length; k++) {
          if (escapeWhitespaces && piece[k] === SPACE) out.push(...SPACE_SYMBOL);
          else out.push(piece[k]);
        }
        prevSpace = piece[piece.length - 1] === SPACE;
      }
      at += n;
      if (!removeExtraWhitespaces) prevSpace = false;
    }
    if (removeExtraWhitespaces) {
      const endsWithSpace = () => out.length >= space.length && space.every((b, i) => out[out.length - space.length + i] === b);
      while (endsWithSpace()) out.length -= space.length;
    }
    return Uint8Array.from(out);
  };
}

/** Encoder of a unigram model: text -> piece ids (no `</s>`), as `SentencePieceProcessor.encode`. */
export function sentencePieceEncoder(model: SentencePieceModel, where: string): (text: string) => number[] {
  const encoder = new TextEncoder();
  const { pieces } = model;
  const unkId = pieces.findIndex((p) => p.type === PieceType.unknown);
  const inLattice = (t: number) => t === PieceType.normal || t === PieceType.userDefined || t === PieceType.unused;
  const trie = buildTrie(pieces.flatMap((p, id) => inLattice(p.type) ? [[encoder.encode(p.piece), id] as [Uint8Array, number]] : []));
  const userDefined = buildTrie(
    pieces.flatMap((p, id) => p.type === PieceType.userDefined ? [[encoder.encode(p.piece), id] as [Uint8Array, number]] : []),
  );
  const normalize = makeNormalizer(model, userDefined, where);
  // sentencepiece starts its running max at FLT_MIN (the smallest positive float), not at -inf.
  let minScore = Infinity, maxScore = 1.1754943508222875e-38;
  for (const p of pieces) {
    if (p.type !== PieceType.normal) continue;
    minScore = Math.min(minScore, p.score);
    maxScore = Math.max(maxScore, p.score);
  }
  // Scores are float32, but sentencepiece adds a piece's score to the path's in double and
  // compares that with the float32 best so far (only the unknown piece's sum is float32):
  // ties between segmentations fall the same way only with the same roundings.
  const f32 = Math.fround;
  const unkScore = f32(minScore - 10);
  return (text) => {
    const s = normalize(text);
    const n = s.length;
    const score = new Float64Array(n + 1), from = new Int32Array(n + 1).fill(-1), ids = new Int32Array(n + 1);
    from[0] = 0;
    for (let at = 0; at < n;) {
      const base = score[at];
      const charLen = Math.min(utf8Len(s[at]), n - at);
      let coversChar = false;
      const offer = (end: number, id: number, total: number) => {
        if (from[end] === -1 || total > score[end]) {
          score[end] = f32(total);
          from[end] = at;
          ids[end] = id;
        }
      };
      let node: TrieNode | undefined = trie;
      for (let i = at; i < n && (node = node.next.get(s[i])); i++) {
        if (node.id < 0) continue;
        const p = pieces[node.id];
        if (p.type === PieceType.unused) continue;
        const len = i + 1 - at;
        offer(i + 1, node.id, (p.type === PieceType.userDefined ? f32(len * maxScore) - 0.1 : p.score) + base);
        if (len === charLen) coversChar = true;
      }
      if (!coversChar) offer(at + charLen, unkId, f32(unkScore + base));
      at += charLen;
    }
    const out: number[] = [];
    for (let end = n; end > 0; end = from[end]) out.push(ids[end]);
    out.reverse();
    return out.filter((id, i) => !(id === unkId && out[i - 1] === unkId));
  };
}
