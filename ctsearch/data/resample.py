"""Streamed trilinear resampling: slab by slab straight from stored values into the output.

Trilinear interpolation is separable, so the official `F.interpolate(trilinear,
align_corners=False)` equals a linear pass along one axis followed by a bilinear pass over the
other two. Doing the first pass slab by slab along the slowest memory axis means the full-size
volume is never converted to float, rescaled, clipped or resampled as a whole: only the output
(and a few slices at a time) is allocated.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CHUNK = 16  # output slices per slab


def linear_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (i0, i1) and weights of output samples, align_corners=False semantics."""
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def crop_pad_slices(n: int, out: int) -> tuple[slice, slice]:
    """Centre crop then centre pad of one axis: (source slice, destination slice).

    Crop start max((n - out) // 2, 0); padding before (out - n') // 2, the rest after.
    """
    start = max((n - out) // 2, 0)
    kept = min(n, out)
    before = (out - kept) // 2
    return slice(start, start + kept), slice(before, before + kept)


def _axis_plan(n_res: int, n_out: int, flipped: bool) -> tuple[np.ndarray, np.ndarray]:
    """Kept resampled indices (memory order) and their destinations in the output axis.

    Centre crop then centre pad are defined in model orientation, i.e. after the flip.
    """
    src, dst = crop_pad_slices(n_res, n_out)
    model_idx = np.arange(src.start, src.stop)
    mem_idx = (n_res - 1 - model_idx) if flipped else model_idx
    return mem_idx, np.arange(dst.start, dst.stop)


class SlabResampler:
    """Resample a (possibly permuted/flipped) view of stored values into a model-order output."""

    def __init__(self, view: np.ndarray, flips: list[int], order: list[int], size, out_shape):
        self.view, self.order = view, order            # view: C-contiguous, memory order
        mem_size = [size[ax] for ax in order]
        self.plans = [_axis_plan(mem_size[k], out_shape[order[k]], order[k] in flips)
                      for k in range(3)]
        self.mem_size = mem_size
        self.weights = linear_weights(view.shape[0], mem_size[0])

    def run(self, out: torch.Tensor, pre, post=None) -> None:
        """Fill `out` (model order): `pre` maps input slices before interpolating (rescale, clip),
        `post` maps interpolated values (e.g. a clip after resampling)."""
        src0, dst0 = self.plans[0]
        for c in range(0, len(src0), CHUNK):
            slab = self._slab(src0[c:c + CHUNK], pre)
            self._write(out, post(slab) if post else slab, dst0[c:c + CHUNK])

    def _slab(self, rows: np.ndarray, transform) -> torch.Tensor:
        """Linear pass along memory axis 0, then bilinear over axes 1-2, cropped."""
        i0, i1, lam = (w[rows] for w in self.weights)
        a = transform(torch.from_numpy(self.view[i0]).float())
        b = transform(torch.from_numpy(self.view[i1]).float())
        slab = torch.lerp(a, b, torch.from_numpy(lam)[:, None, None])
        slab = F.interpolate(slab[:, None], size=self.mem_size[1:], mode="bilinear",
                             align_corners=False)[:, 0]
        (s1, _), (s2, _) = self.plans[1], self.plans[2]
        return slab[:, torch.from_numpy(s1)][:, :, torch.from_numpy(s2)]

    def _write(self, out: torch.Tensor, slab: torch.Tensor, dst0: np.ndarray) -> None:
        """Copy a memory-order slab into its (contiguous) place in the model-order output."""
        dsts = [dst0, self.plans[1][1], self.plans[2][1]]
        model = slab.permute(*np.argsort(self.order).tolist())
        where = [dsts[list(self.order).index(ax)] for ax in range(3)]
        out[tuple(slice(int(d[0]), int(d[-1]) + 1) for d in where)] = model
