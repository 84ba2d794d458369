/**
 * PCG32 with Box–Muller normals: a small seedable generator whose output is fixed bit for bit
 * by its seed, so that a run can be repeated exactly and checked against another
 * implementation of the same algorithm.
 *
 * The algorithm, exactly (all integer arithmetic unsigned, modulo 2^64 unless noted):
 *
 *   MULT = 6364136223846793005 (0x5851F42D4C957F2D)
 *   step(s) = s * MULT + inc
 *
 *   seeding, createRng(seed, stream)  (pcg_basic.c's pcg32_srandom_r):
 *     inc   = (stream << 1) | 1
 *     state = 0; state = step(state); state = state + seed; state = step(state)
 *
 *   nextUint32 (pcg32_random_r, output function XSH-RR):
 *     old   = state; state = step(old)
 *     xs    = ((old >> 18) XOR old) >> 27, truncated to 32 bits
 *     rot   = old >> 59
 *     return rotate_right_32(xs, rot)
 *
 *   uniform53: a = nextUint32() >> 5, b = nextUint32() >> 6 (in this order);
 *     return (a * 2^26 + b) / 2^53, a double in [0, 1)
 *
 *   normal pair (Box–Muller, float64):
 *     u1 = 1 - uniform53()   (drawn first, in (0, 1])
 *     u2 = uniform53()
 *     r = sqrt(-2 ln u1); z0 = r cos(2 pi u2); z1 = r sin(2 pi u2)
 *
 *   normals are handed out z0, z1, z0, z1, ...: a draw takes the generator's spare z1 if it holds
 *   one, else makes a fresh pair, returns its z0 and keeps its z1 as the spare. So normal(rng, 3)
 *   followed by normal(rng, 1) gives the same four numbers as normal(rng, 4). Each normal is
 *   rounded to float32 only when it is stored.
 *
 * With seed 42 and stream 54 the first outputs are those of the pcg32-demo program of the PCG
 * reference distribution (0xa15c02b7, 0x7b47f409, 0xba1d3330, ...); see tests/random.
 *
 * The integer part is exact everywhere. The normals use Math.log/cos/sin: V8 computes these with
 * its own fdlibm port, so Deno gives the same bits on every machine; another language's libm may
 * differ in the last bit of a float64 before the float32 rounding.
 */
import { ForaError } from "../errors.ts";

/** Generator state. Plain data: copy it (`{ ...rng }`) to fork a stream. */
export interface Rng {
  /** 64-bit LCG state, high and low 32-bit halves (each an unsigned 32-bit integer). */
  stateHi: number;
  stateLo: number;
  /** LCG increment (always odd), halves. */
  incHi: number;
  incLo: number;
  /** The z1 of the last Box–Muller pair, not handed out yet; null when there is none. */
  spare: number | null;
}

/** The stream pcg32-demo uses; the default for every generator of this project. */
export const DEFAULT_STREAM = 54n;

const MULT_HI = 0x5851f42d;
const MULT_LO = 0x4c957f2d;
const TWO32 = 4294967296;
const MASK64 = (1n << 64n) - 1n;

/** Turns a seed given as bigint or number into an unsigned 64-bit bigint (negatives wrap). */
export function toUint64(seed: bigint | number): bigint {
  if (typeof seed === "number") {
    if (!Number.isSafeInteger(seed)) {
      throw new ForaError("usage", `seed ${seed} is not an integer in ±2^53; pass a bigint for larger seeds`);
    }
    seed = BigInt(seed);
  }
  return BigInt.asUintN(64, seed);
}

function split(v: bigint): [number, number] {
  return [Number(v >> 32n), Number(v & 0xffffffffn)];
}

function join(hi: number, lo: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** One LCG step on the state held in `rng`. 64-bit product built from 16-bit limbs, exact in doubles. */
function advance(rng: Rng): void {
  const hi = rng.stateHi, lo = rng.stateLo;
  // full 64-bit product lo * MULT_LO
  const a0 = lo & 0xffff, a1 = lo >>> 16;
  const b0 = MULT_LO & 0xffff, b1 = MULT_LO >>> 16;
  const mid = a0 * b1 + a1 * b0;
  const low = a0 * b0 + (mid % 65536) * 65536;
  let pHi = a1 * b1 + Math.floor(mid / 65536) + Math.floor(low / TWO32);
  const pLo = low % TWO32;
  // cross terms only reach the high word
  pHi = (pHi + Math.imul(hi, MULT_LO) + Math.imul(lo, MULT_HI)) >>> 0;
  const sumLo = pLo + rng.incLo;
  rng.stateLo = sumLo >>> 0;
  rng.stateHi = (pHi + rng.incHi + (sumLo >= TWO32 ? 1 : 0)) >>> 0;
}

/** A generator seeded as pcg32_srandom_r(seed, stream). */
export function createRng(seed: bigint | number, stream: bigint | number = DEFAULT_STREAM): Rng {
  const [incHi, incLo] = split(((toUint64(stream) << 1n) | 1n) & MASK64);
  const rng: Rng = { stateHi: 0, stateLo: 0, incHi, incLo, spare: null };
  advance(rng);
  const [hi, lo] = split((join(rng.stateHi, rng.stateLo) + toUint64(seed)) & MASK64);
  rng.stateHi = hi;
  rng.stateLo = lo;
  advance(rng);
  return rng;
}

/** Next 32-bit output, an integer in [0, 2^32). */
export function nextUint32(rng: Rng): number {
  const oh = rng.stateHi, ol = rng.stateLo;
  advance(rng);
  const xh = oh ^ (oh >>> 18);
  const xl = ol ^ ((ol >>> 18) | (oh << 14));
  const xs = ((xl >>> 27) | (xh << 5)) >>> 0;
  const rot = oh >>> 27;
  return ((xs >>> rot) | (xs << ((32 - rot) & 31))) >>> 0;
}

/** A double in [0, 1) with 53 random bits (two outputs). */
export function uniform53(rng: Rng): number {
  const a = nextUint32(rng) >>> 5;
  const b = nextUint32(rng) >>> 6;
  return (a * 67108864 + b) / 9007199254740992;
}

/** One standard normal as a float64 (Box–Muller, with the spare; see the module comment). */
export function normal64(rng: Rng): number {
  if (rng.spare !== null) {
    const z = rng.spare;
    rng.spare = null;
    return z;
  }
  const u1 = 1 - uniform53(rng);
  const u2 = uniform53(rng);
  const r = Math.sqrt(-2 * Math.log(u1));
  const theta = 2 * Math.PI * u2;
  rng.spare = r * Math.sin(theta);
  return r * Math.cos(theta);
}

/** Writes `n` standard normals into `out[offset .. offset+n)`. */
export function fillNormal(rng: Rng, out: Float32Array, offset = 0, n = out.length - offset): void {
  for (let i = 0; i < n; i++) out[offset + i] = normal64(rng);
}

/** `n` standard normals as float32. */
export function normal(rng: Rng, n: number): Float32Array {
  const out = new Float32Array(n);
  fillNormal(rng, out);
  return out;
}
