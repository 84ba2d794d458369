"""Independent reference of lib/random (PCG32 + Box-Muller, SplitMix64 sample seeds).

Written from the algorithm text in lib/random/pcg32.ts and seed.ts with Python integers, not
from the TypeScript. It printed the known values that tests/random/*_test.ts check:

    python3 tests/random/reference_rng.py
"""
import json
import math

M64 = (1 << 64) - 1
MULT = 6364136223846793005


class Pcg32:
    def __init__(self, seed, stream=54):
        self.inc = ((stream << 1) | 1) & M64
        self.state = 0
        self.step()
        self.state = (self.state + seed) & M64
        self.step()
        self.spare = None

    def step(self):
        self.state = (self.state * MULT + self.inc) & M64

    def next_u32(self):
        old = self.state
        self.step()
        xs = (((old >> 18) ^ old) >> 27) & 0xFFFFFFFF
        rot = old >> 59
        return ((xs >> rot) | (xs << ((-rot) & 31))) & 0xFFFFFFFF

    def uniform53(self):
        a = self.next_u32() >> 5
        b = self.next_u32() >> 6
        return (a * 67108864 + b) / 9007199254740992.0

    def normal(self):
        if self.spare is not None:
            z, self.spare = self.spare, None
            return z
        u1 = 1.0 - self.uniform53()
        u2 = self.uniform53()
        r = math.sqrt(-2.0 * math.log(u1))
        self.spare = r * math.sin(2.0 * math.pi * u2)
        return r * math.cos(2.0 * math.pi * u2)


def splitmix64_output(seed, index):
    z = (seed + (index + 1) * 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def f32(x):
    import struct
    return struct.unpack("f", struct.pack("f", x))[0]


def main():
    out = {}
    g = Pcg32(42, 54)
    out["u32_seed42_stream54"] = [g.next_u32() for _ in range(6)]
    g = Pcg32(0xDEADBEEFCAFEF00D, 54)
    out["u32_big_seed"] = [g.next_u32() for _ in range(4)]
    g = Pcg32(2024, 54)
    out["uniform53_seed2024"] = [repr(g.uniform53()) for _ in range(3)]
    g = Pcg32(7, 54)
    zs = [g.normal() for _ in range(6)]
    out["normal64_seed7"] = [repr(z) for z in zs]
    out["normal32_seed7"] = [repr(f32(z)) for z in zs]
    # SplitMix64 with state 0: the well-known first outputs of splitmix64.c
    out["splitmix_seed0"] = [hex(splitmix64_output(0, i)) for i in range(3)]
    out["sample_seed_1234"] = [hex(splitmix64_output(1234, i)) for i in range(3)]
    g = Pcg32(splitmix64_output(1234, 1), 54)
    out["sample1_of_1234_normals"] = [repr(f32(g.normal())) for _ in range(4)]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
