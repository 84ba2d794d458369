"""Writes fixtures/resize/golden.json: images resized to cover a size and center-cropped, as
diffusers' PixArt pipelines bring a binned sample back to the requested size
(resize_and_crop_tensor: F.interpolate bilinear, align_corners=False, then the middle crop).

    OMP_NUM_THREADS=1 /usr/bin/python3 tools/reference/make_resize_golden.py

Needs Debian's python3-torch. Inputs are seeded uniform values in [-1, 1] (float64); each case
is [channels, height, width] -> width x height: down, up, square to wide, tall to narrow, and
the no-op case.
"""
import json
import torch
import torch.nn.functional as F

CASES = [(3, 12, 20, 17, 13), (3, 16, 16, 30, 11), (1, 8, 32, 20, 20), (3, 24, 8, 7, 29), (3, 10, 14, 10, 14), (3, 32, 20, 17, 25)]


def cover_and_crop(x, width, height):
    h, w = x.shape[2], x.shape[3]
    if (h, w) == (height, width):
        return x
    ratio = max(height / h, width / w)
    rw, rh = int(w * ratio), int(h * ratio)
    y = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False)
    sx, sy = (rw - width) // 2, (rh - height) // 2
    return y[:, :, sy:sy + height, sx:sx + width]


def main():
    torch.manual_seed(0)
    cases = []
    for c, h, w, width, height in CASES:
        # rounded to 6 decimals first, so the JSON holds the exact inputs
        x = torch.round((torch.rand(1, c, h, w, dtype=torch.float64) * 2 - 1) * 1e6) / 1e6
        y = cover_and_crop(x, width, height)
        cases.append({"shape": [c, h, w], "width": width, "height": height, "input": x.flatten().tolist(), "output": [round(v, 9) for v in y.flatten().tolist()]})
    with open("fixtures/resize/golden.json", "w") as f:
        json.dump(cases, f)


if __name__ == "__main__":
    main()
