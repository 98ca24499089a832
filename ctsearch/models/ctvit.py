"""CT-ViT encoder computed exactly as the official CTViT (patches, spatial + temporal
transformers with PEG, cosine-sim attention, GEGLU, cosine-sim vector quantisation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ctsearch.models.config import VisionCfg

ATTN_SCALE = 8.0  # the official cosine-sim attention multiplies q.k by a fixed 8


class BufferLayerNorm(nn.Module):
    """The official LayerNorm: weight `gamma` (parameter), bias `beta` (saved buffer)."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.register_buffer("beta", torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.gamma, self.beta)


class PEG(nn.Module):
    """Depthwise 3x3x3 conv over a (t, h, w) grid, causal (2, 0) padding on the first axis."""

    def __init__(self, dim: int):
        super().__init__()
        self.dsconv = nn.Conv3d(dim, dim, 3, groups=dim)

    def forward(self, x: torch.Tensor, grid: tuple[int, int, int, int]) -> torch.Tensor:
        # The official code reshapes the token tensor as (b, t, h, w, d) whatever its layout.
        shape = x.shape
        v = x.reshape(*grid, shape[-1]).permute(0, 4, 1, 2, 3)
        v = self.dsconv(F.pad(v, (1, 1, 1, 1, 2, 0)))
        return v.permute(0, 2, 3, 4, 1).reshape(shape)


class Attention(nn.Module):
    """Cosine-sim attention: q from the normed input, k/v from the raw input, learned scales."""

    def __init__(self, dim: int, dim_head: int, heads: int):
        super().__init__()
        self.heads, inner = heads, dim_head * heads
        self.norm = BufferLayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)
        self.q_scale = nn.Parameter(torch.ones(dim_head))
        self.k_scale = nn.Parameter(torch.ones(dim_head))

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        q = self._split(self.to_q(self.norm(x)))
        k, v = (self._split(t) for t in self.to_kv(x).chunk(2, dim=-1))
        q = F.normalize(q, dim=-1) * self.q_scale
        k = F.normalize(k, dim=-1) * self.k_scale
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=ATTN_SCALE)
        return self.to_out(out.transpose(1, 2).flatten(2))


class FeedForward(nn.Sequential):
    """LayerNorm -> Linear -> GEGLU -> Linear (indices as the official state dict: 0, 1, 4)."""

    def __init__(self, dim: int, inner: int):
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, inner * 2, bias=False), GEGLU(),
                         nn.Identity(), nn.Linear(inner, dim, bias=False))


class GEGLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = x.chunk(2, dim=-1)
        return value * F.gelu(gate)


class Layer(nn.ModuleList):
    """[PEG, attention, (absent cross-attention), feed-forward] as the official indices."""

    def __init__(self, cfg: VisionCfg):
        super().__init__([PEG(cfg.dim), Attention(cfg.dim, cfg.dim_head, cfg.heads),
                          nn.Identity(), FeedForward(cfg.dim, cfg.ff_inner)])

    def forward(self, x, grid, bias=None):
        peg, attn, _, ff = self
        x = peg(x, grid) + x
        x = attn(x, bias) + x
        return ff(x) + x


class Transformer(nn.Module):
    def __init__(self, cfg: VisionCfg, depth: int):
        super().__init__()
        self.layers = nn.ModuleList([Layer(cfg) for _ in range(depth)])
        self.norm_out = BufferLayerNorm(cfg.dim)

    def forward(self, x, grid, bias=None):
        for layer in self.layers:
            x = layer(x, grid, bias)
        return self.norm_out(x)


class ContinuousPositionBias(nn.Module):
    """Per-head bias from an MLP over log-signed relative (row, column) offsets."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.net = nn.ModuleList([
            nn.Sequential(nn.Linear(2, dim), nn.LeakyReLU(0.1)),
            nn.Sequential(nn.Linear(dim, dim), nn.LeakyReLU(0.1)),
            nn.Linear(dim, heads)])

    def forward(self, h: int, w: int) -> torch.Tensor:
        """(heads, h*w, h*w). The MLP runs once per distinct offset ((2h-1)(2w-1) of them,
        not (hw)^2) and is gathered: the same values as evaluating every pair."""
        device, dtype = self.net[2].weight.device, self.net[2].weight.dtype
        dy, dx = torch.meshgrid(torch.arange(-h + 1, h, device=device),
                                torch.arange(-w + 1, w, device=device), indexing="ij")
        rel = torch.stack([dy, dx], -1).reshape(-1, 2).to(dtype)
        x = torch.sign(rel) * torch.log(rel.abs() + 1)
        for layer in self.net:
            x = layer(x)  # (distinct offsets, heads)
        r, c = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                              indexing="ij")
        r, c = r.reshape(-1), c.reshape(-1)
        index = (r[:, None] - r[None, :] + h - 1) * (2 * w - 1) + (c[:, None] - c[None, :] + w - 1)
        return x[index].permute(2, 0, 1)


class PatchEmbed(nn.Sequential):
    """Patchify (c, slice, row, column order) -> LayerNorm -> Linear -> LayerNorm; index 0 empty."""

    def __init__(self, cfg: VisionCfg):
        patch_dim = cfg.channels * cfg.temporal_patch_size * cfg.patch_size**2
        super().__init__(nn.Identity(), nn.LayerNorm(patch_dim), nn.Linear(patch_dim, cfg.dim),
                         nn.LayerNorm(cfg.dim))
        self.pt, self.p = cfg.temporal_patch_size, cfg.patch_size

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        t, hh, ww = d // self.pt, h // self.p, w // self.p
        x = x.reshape(b, c, t, self.pt, hh, self.p, ww, self.p)
        return x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, t, hh, ww, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self[3](self[2](self[1](self.patchify(x))))


class Codebook(nn.Module):
    """Cosine-similarity codebook (state dict names as vector-quantize-pytorch 1.1.2)."""

    def __init__(self, dim: int, size: int, decay: float = 0.8):
        super().__init__()
        self.decay = decay
        self.register_buffer("initted", torch.ones(1))
        self.register_buffer("cluster_size", torch.zeros(1, size))
        self.register_buffer("embed", F.normalize(torch.randn(1, size, dim), dim=-1))


def _farthest_points(x: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """k rows of unit vectors `x`, each the least similar to those already chosen."""
    gen = torch.Generator().manual_seed(seed)
    chosen = [int(torch.randint(0, x.shape[0], (1,), generator=gen))]
    best = x @ x[chosen[0]]
    for _ in range(1, k):
        nxt = int(best.argmin())
        chosen.append(nxt)
        best = torch.maximum(best, x @ x[nxt])
    return x[chosen].clone()


class VectorQuantize(nn.Module):
    """Nearest codebook row by cosine similarity; outputs the row as stored."""

    def __init__(self, dim: int, size: int):
        super().__init__()
        self._codebook = Codebook(dim, size)
        self.ema_update = True  # official: the codebook follows the tokens in train mode

    @property
    def embed(self) -> torch.Tensor:
        return self._codebook.embed[0]

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        sim = F.normalize(x, dim=-1) @ F.normalize(self.embed, dim=-1).t()
        return sim.argmax(dim=-1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.codes(x)
        q = F.embedding(idx, self.embed)
        if self.training:
            if self.ema_update:
                self._ema_update(x, idx)
            q = x + (q - x).detach()  # straight-through
        return q, idx

    @torch.no_grad()
    def init_from(self, tokens: torch.Tensor, iters: int = 10, seed: int = 0) -> None:
        """Spherical k-means of sample tokens (N, dim) into the codebook (vector-quantize's
        `kmeans_init`, which the official training left off because it started from a trained
        CT-ViT); rows keep unit norm."""
        x = F.normalize(tokens.reshape(-1, tokens.shape[-1]).float(), dim=-1)
        size = self._codebook.embed.shape[1]
        centres = _farthest_points(x, size, seed)
        for _ in range(iters):
            assign = (x @ centres.t()).argmax(dim=1)
            sums = torch.zeros_like(centres).index_add_(0, assign, x)
            counts = torch.bincount(assign, minlength=size)
            used = counts > 0
            centres[used] = F.normalize(sums[used], dim=-1)
            worst = (x @ centres.t()).max(dim=1).values.argsort()[: int((~used).sum())]
            centres[~used] = x[worst]  # empty codes restart at the worst-fitted tokens
        self._codebook.embed[0] = centres.to(self._codebook.embed.dtype)

    @torch.no_grad()
    def _ema_update(self, x: torch.Tensor, idx: torch.Tensor) -> None:
        """EMA of the normalised tokens assigned to each code (decay 0.8), rows re-normalised."""
        flat, idx = F.normalize(x.detach().reshape(-1, x.shape[-1]), dim=-1), idx.reshape(-1)
        cb = self._codebook
        onehot = F.one_hot(idx, cb.embed.shape[1]).type(flat.dtype)
        counts = onehot.sum(0)
        sums = onehot.t() @ flat
        used = counts > 0
        cb.cluster_size[0].mul_(cb.decay).add_(counts, alpha=1 - cb.decay)
        means = sums[used] / counts[used, None]
        new = cb.embed[0, used] * cb.decay + means * (1 - cb.decay)
        cb.embed[0, used] = F.normalize(new, dim=-1)


class CTViT(nn.Module):
    """Volume (B, C, D, H, W) in [-1, 1] -> quantised token grid (B, t, h, w, dim) + codes."""

    def __init__(self, cfg: VisionCfg):
        super().__init__()
        self.cfg = cfg
        self.spatial_rel_pos_bias = ContinuousPositionBias(cfg.dim, cfg.heads)
        self.to_patch_emb = PatchEmbed(cfg)
        self.enc_spatial_transformer = Transformer(cfg, cfg.spatial_depth)
        self.enc_temporal_transformer = Transformer(cfg, cfg.temporal_depth)
        self.vq = VectorQuantize(cfg.dim, cfg.codebook_size)

    def check_input(self, x: torch.Tensor) -> None:
        c, p, pt = self.cfg.channels, self.cfg.patch_size, self.cfg.temporal_patch_size
        if x.ndim != 5 or x.shape[1] != c or x.shape[2] % pt or x.shape[3] % p or x.shape[4] % p:
            raise ValueError(f"expected a (B, {c}, D, H, W) volume with D divisible by {pt} and "
                             f"H, W by {p}; got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"expected a floating-point volume, got {x.dtype}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-quantisation tokens (B, t, h, w, dim)."""
        self.check_input(x)
        tokens = self.to_patch_emb(x)
        b, t, h, w, d = tokens.shape
        grid = (b, t, h, w)
        bias = self.spatial_rel_pos_bias(h, w).to(tokens.dtype)
        x = self.enc_spatial_transformer(tokens.reshape(b * t, h * w, d), grid, bias)
        x = x.reshape(b, t, h, w, d).permute(0, 2, 3, 1, 4).reshape(b * h * w, t, d)
        x = self.enc_temporal_transformer(x, grid)
        return x.reshape(b, h, w, t, d).permute(0, 3, 1, 2, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(quantised tokens (B, t, h, w, dim), codes (B, t, h, w))."""
        return self.vq(self.encode(x))
