"""The three preprocessing methods the benchmark compares, each run alone in a subprocess."""

from __future__ import annotations

import io
import json
import resource
import sys
import time

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from isal import igzip  # noqa: F401 - imported before timing, like nibabel's zlib

from ctsearch.data import PreprocessCfg, preprocess, read_volume

TARGET = (1.5, 0.75, 0.75)  # (z, x, y) mm, official order
OUT_XYZ = (480, 480, 240)


def floor(path: str, **_) -> None:
    """(c) The floor: nibabel load + gzip decode of the stored values, nothing else."""
    np.asanyarray(nib.load(path).dataobj)


def naive_official(path: str, slope: float, intercept: float, z: float, xy: float) -> None:
    """(b) The official recipe as the reference describes it (float64 throughout)."""
    img = nib.load(path).get_fdata()
    img = slope * img + intercept
    img = np.clip(img, -1000, 1000).transpose(2, 0, 1)
    t = torch.tensor(img)[None, None]
    size = [int(n * c / t_) for n, c, t_ in zip(img.shape, (z, xy, xy), TARGET, strict=True)]
    t = F.interpolate(t, size=size, mode="trilinear", align_corners=False)[0, 0]
    arr = t.numpy().transpose(1, 2, 0) / 1000.0
    out = _naive_crop_pad(torch.tensor(arr).float())
    out.permute(2, 0, 1).unsqueeze(0)


def _naive_crop_pad(t: torch.Tensor) -> torch.Tensor:
    """Centre crop then pad with -1 to (480, 480, 240) in (X, Y, Z) order."""
    starts = [max((n - o) // 2, 0) for n, o in zip(t.shape, OUT_XYZ, strict=True)]
    t = t[tuple(slice(s, s + o) for s, o in zip(starts, OUT_XYZ, strict=True))]
    pads = []
    for n, o in reversed(list(zip(t.shape, OUT_XYZ, strict=True))):
        before = (o - n) // 2
        pads += [before, o - n - before]
    return F.pad(t, pads, value=-1.0)


def ctsearch_method(path: str, slope: float, intercept: float, z: float, xy: float) -> None:
    """(a) ctsearch: ISA-L decode, float32, layout-aware resample, float16 cache write."""
    vol = read_volume(path, slope, intercept, spacing=(z, xy, xy))
    x = preprocess(vol.stored, vol.spacing, PreprocessCfg(), dtype="float16", slope=vol.slope,
                   offset=vol.offset)
    np.save(io.BytesIO(), x)


METHODS = {"ctsearch": ctsearch_method, "official_naive": naive_official, "floor": floor}


def main(argv: list[str]) -> None:
    """argv: METHOD PATH SLOPE INTERCEPT ZSPACING XYSPACING -> prints JSON seconds + peak RSS."""
    method, path = argv[0], argv[1]
    slope, intercept, z, xy = (float(v) for v in argv[2:6])
    torch.set_num_threads(int(argv[6]) if len(argv) > 6 else torch.get_num_threads())
    start = time.perf_counter()
    METHODS[method](path, slope=slope, intercept=intercept, z=z, xy=xy)
    seconds = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mb": rss_mb}))


if __name__ == "__main__":
    main(sys.argv[1:])
