"""Writes the .npy files that tests/io/npy_test.ts reads, with NumPy itself.

Run from this folder: /usr/bin/python3 make_npy.py
"""
import numpy as np

# (i - 11.5) / 7 in float32, i = 0..23, shape (2, 3, 4): the test recomputes these values.
a = ((np.arange(24, dtype=np.float32) - np.float32(11.5)) / np.float32(7)).reshape(2, 3, 4)
np.save("numpy_f4.npy", a)

# Format version 2.0 (4-byte header length), shape (3,).
with open("numpy_f4_v2.npy", "wb") as f:
    np.lib.format.write_array(f, np.array([1.5, -2.0, 3.25], dtype=np.float32), version=(2, 0))

# Not float32, and not C order: both must be refused with a clear message.
np.save("numpy_f8.npy", np.array([1.0, 2.0], dtype=np.float64))
np.save("numpy_fortran.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
