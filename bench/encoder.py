"""`ctsearch bench encoder`: volumes/s and peak memory of encode_volume, ctsearch vs a naive
re-implementation of the official CT-ViT computation (einsum attention, explicit copies)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ctsearch.fsutil import write_json
from ctsearch.models import CTCLIP, model_preset


def naive_attention(attn, x: torch.Tensor, bias=None) -> torch.Tensor:
    """The official order of operations: materialised (n x n) similarity via einsum."""
    h = attn.heads
    q = attn.to_q(attn.norm(x))
    k, v = attn.to_kv(x).chunk(2, dim=-1)
    q, k, v = (t.reshape(t.shape[0], t.shape[1], h, -1).permute(0, 2, 1, 3).contiguous()
               for t in (q, k, v))
    q = F.normalize(q, dim=-1) * attn.q_scale
    k = F.normalize(k, dim=-1) * attn.k_scale
    sim = torch.einsum("bhid,bhjd->bhij", q, k) * 8.0
    if bias is not None:
        sim = sim + bias
    out = torch.einsum("bhij,bhjd->bhid", sim.softmax(dim=-1), v)
    return attn.to_out(out.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[1], -1))


def naive_bias(cpb, h: int, w: int) -> torch.Tensor:
    """The official position bias: the MLP evaluated on every (i, j) token pair."""
    pos = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1)
    pos = pos.reshape(-1, 2).float()
    rel = pos[:, None, :] - pos[None, :, :]
    z = torch.sign(rel) * torch.log(rel.abs() + 1)
    for layer in cpb.net:
        z = layer(z)
    return z.permute(2, 0, 1)


def naive_encode(vt, x: torch.Tensor) -> torch.Tensor:
    """CT-ViT forward with naive attention and contiguous copies between stages."""
    tokens = vt.to_patch_emb(x).contiguous()
    b, t, hh, ww, d = tokens.shape
    grid, bias = (b, t, hh, ww), naive_bias(vt.spatial_rel_pos_bias, hh, ww)

    def run(tr, z, bias=None):
        for peg, attn, _, ff in tr.layers:
            z = peg(z, grid) + z
            z = naive_attention(attn, z, bias) + z
            z = ff(z) + z
        return tr.norm_out(z)

    z = run(vt.enc_spatial_transformer, tokens.reshape(b * t, hh * ww, d), bias)
    z = z.reshape(b, t, hh, ww, d).permute(0, 2, 3, 1, 4).contiguous().reshape(b * hh * ww, t, d)
    z = run(vt.enc_temporal_transformer, z)
    return z.reshape(b, hh, ww, t, d).permute(0, 3, 1, 2, 4).contiguous()  # pre-VQ tokens


def measure(preset: str, method: str, *, batch: int, repeats: int) -> dict:
    """Build the preset (seeded random weights), time `repeats` forwards after one warm-up."""
    torch.manual_seed(0)
    cfg = model_preset(preset)
    model = CTCLIP(cfg).eval()
    x = torch.rand(batch, 1, *cfg.preprocess.shape) * 2 - 1
    vt = model.visual_transformer
    pre = vt.encode if method == "ctsearch" else (lambda v: naive_encode(vt, v))

    def fn(v):  # the whole image path: tokens -> VQ -> pooled latent
        return model.latent_from_tokens(vt.vq(pre(v))[0])

    with torch.inference_mode():
        out = pre(x)  # warm-up; pre-VQ tokens kept for the agreement check
        start = time.perf_counter()
        for _ in range(repeats):
            fn(x)
        seconds = (time.perf_counter() - start) / repeats
    torch.save(out, _tokens_file(preset, method))
    return {"seconds_per_batch": seconds, "volumes_per_s": batch / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _tokens_file(preset: str, method: str) -> Path:
    """Where a subprocess leaves its pre-VQ token grid for the agreement check."""
    return Path(tempfile.gettempdir()) / f"ctsearch_bench_{preset}_{method}.pt"


def _subprocess(preset: str, method: str, batch: int, repeats: int) -> dict:
    code = ("import json,sys; from ctsearch.bench.encoder import measure; "
            f"print(json.dumps(measure({preset!r}, {method!r}, batch={batch}, "
            f"repeats={repeats})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    if proc.returncode:
        raise RuntimeError(f"{preset}/{method} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_encoder_bench(out: str | Path, presets=("tiny", "paper"), *, batch: int = 1,
                      repeats: int = 2) -> dict:
    """Each (preset, method) in a fresh process; ratios and max |difference| of token grids."""
    rows = {}
    for preset in presets:
        for method in ("ctsearch", "official_naive"):
            rows[f"{preset}/{method}"] = _subprocess(preset, method, batch, repeats)
        a, b = (torch.load(_tokens_file(preset, m)) for m in ("ctsearch", "official_naive"))
        rows[f"{preset}/ratio"] = {
            "speedup": rows[f"{preset}/official_naive"]["seconds_per_batch"]
            / rows[f"{preset}/ctsearch"]["seconds_per_batch"],
            "max_abs_diff": float((a - b).abs().max())}
    report = {"batch": batch, "threads": torch.get_num_threads(), "results": rows}
    write_json(Path(out) / "encoder.json", report)
    return report
