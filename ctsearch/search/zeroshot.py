"""Zero-shot detection: prompt-pair embeddings (cached per index) against indexed image latents.

The official script re-runs the whole model once per finding and volume; here each volume's
latent comes from the index (one encoder pass in total) and the prompts are encoded once, so
P(present) for every volume and finding is one matrix product + a softmax over each pair.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.errors import IndexFormatError, ModelError, QueryError, UsageError
from ctsearch.fsutil import atomic_output
from ctsearch.search.modes import Template

log = logging.getLogger(__name__)


TEMPLATES = {  # name -> (present, absent)
    Template.official: ("{} is present.", "{} is not present."),  # the v2 zero-shot script
    Template.v1: ("{}.", "not {}."),                               # the v1 zero-shot script
    Template.there_is: ("There is {}.", "There is no {}."),        # the trainer's validation
    Template.observed: ("{} is observed.", "{} is not observed."),  # CT-RATE report phrasing
    Template.evidence: ("Evidence of {}.", "No evidence of {}."),
    Template.findings: ("Findings consistent with {}.", "No findings of {}."),
    Template.positive: ("Positive for {}.", "Negative for {}."),
}
SEVEN = tuple(TEMPLATES)  # `bench detect --templates seven` compares all of them side by side
ENSEMBLE = Template.ensemble  # CLIP prompt ensembling: the mean of the seven pairs' embeddings


def check_template(template: str | Template) -> Template | str:
    """A Template by name, or a custom 'PRESENT|ABSENT' string with one '{}' in each half."""
    try:
        return Template(template)
    except ValueError:
        pass
    parts = template.split("|")
    if len(parts) != 2 or any(p.count("{}") != 1 for p in parts):
        names = ", ".join(t.value for t in Template)
        raise UsageError(f"template {template!r}: a name ({names}) or 'PRESENT|ABSENT' with "
                         "one {} each")
    return template


def template_pair(template: str | Template) -> tuple[str, str]:
    """The (present, absent) pair of a template name or a 'PRESENT|ABSENT' string."""
    template = check_template(template)
    if template == ENSEMBLE:
        raise UsageError("template 'ensemble' is a mean of the seven pairs, not one pair")
    if template in TEMPLATES:
        return TEMPLATES[template]
    present, absent = template.split("|")
    return present, absent


def prompt_texts(findings: list[str], template: str = "official") -> list[tuple[str, str]]:
    present, absent = template_pair(template)
    return [(present.format(f), absent.format(f)) for f in findings]


def prompt_embeddings(encoder, findings: list[str], template: str = "official") -> np.ndarray:
    """(F, 2, dim) L2-normalised text latents of each finding's [present, absent] prompts."""
    if template == ENSEMBLE:
        mean = np.mean([prompt_embeddings(encoder, findings, t) for t in SEVEN], axis=0)
        return mean / np.linalg.norm(mean, axis=-1, keepdims=True)
    flat = [t for pair in prompt_texts(findings, template) for t in pair]
    return encoder.encode_text(flat).reshape(len(findings), 2, -1)


def presence_probs(latents: np.ndarray, prompts: np.ndarray, logit_scale: float) -> np.ndarray:
    """(N, F) P(present): softmax over each pair of scaled cosine similarities (official)."""
    logits = logit_scale * np.einsum("nd,fkd->nfk", latents, prompts)
    logits -= logits.max(axis=2, keepdims=True)
    e = np.exp(logits)
    return (e[..., 0] / e.sum(axis=2)).astype(np.float32)


def cached_prompts(folder: Path, encoder, findings: list[str], template: str) -> np.ndarray:
    """Prompt embeddings from `folder/prompts/` (keyed by model, template, findings) or fresh."""
    pairs = [TEMPLATES[t] for t in SEVEN] if template == ENSEMBLE else [template_pair(template)]
    key = hashlib.sha1(repr((encoder.fingerprint()["id"], pairs,
                             findings)).encode()).hexdigest()[:16]
    path = folder / "prompts" / f"{key}.npy"
    cached = _read_cached(path, (len(findings), 2, encoder.dim))
    if cached is not None:
        return cached
    emb = prompt_embeddings(encoder, findings, template)
    if not np.isfinite(emb).all():
        raise ModelError(f"model {encoder.path}: its prompt embeddings are not finite "
                         "(NaN/inf weights: a diverged or damaged checkpoint)")
    with atomic_output(path, ".npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, emb)
    return emb


def _read_cached(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached prompt embeddings, or None when absent or damaged (then rebuilt)."""
    if not path.exists():
        return None
    try:
        emb = np.load(path)
    except (OSError, ValueError, EOFError) as exc:
        log.warning("prompt cache %s is damaged (%s): encoding the prompts again", path, exc)
        return None
    if emb.shape != shape or not np.isfinite(emb).all():
        log.warning("prompt cache %s is damaged (shape %s, expected %s, or not finite): "
                    "encoding the prompts again", path, emb.shape, shape)
        return None
    return emb


def _check_latents(searcher, names: list[str], latents: np.ndarray, file=None) -> None:
    """Non-finite latents: the index is damaged, or the model diverged on a volume file."""
    bad = [n for n, ok in zip(names, np.isfinite(latents).all(axis=1), strict=True) if not ok]
    if bad and file:
        raise ModelError(f"model {searcher.encoder.path}: its embedding of volume file {file} "
                         "is not finite (NaN/inf weights: a diverged or damaged checkpoint)")
    if bad:
        raise IndexFormatError(f"index {searcher.name!r}: the latents of {len(bad)} volume(s) "
                               f"are not finite (first: {bad[0]}); the index is damaged or was "
                               "built by a diverged model; rebuild it")


def probs_table(volumes: list[str], probs: np.ndarray, findings: list[str]) -> pa.Table:
    """`volume` + one float column of P(present) per finding."""
    cols = {"volume": volumes}
    cols.update({f: probs[:, j] for j, f in enumerate(findings)})
    return pa.table(cols)


def detect(searcher, findings: list[str] | None = None, *, volume: str | Path | None = None,
           like: str | None = None, all_volumes: bool = False,
           template: str | Template = Template.official) -> pa.Table:
    """P(present) per finding for one volume (file or indexed) or every indexed volume."""
    findings = list(findings or PATHOLOGIES)
    if sum(bool(v) for v in (volume, like, all_volumes)) != 1:
        raise QueryError("give exactly one of volume, like, all_volumes")
    if any(not f.strip() for f in findings):
        raise QueryError("finding text is empty")
    template = check_template(template)
    if all_volumes:
        names, latents = [r["volume"] for r in searcher.rows], searcher.vectors
    else:
        names = [like or Path(volume).name]
        latents = searcher.query_vector(volume=volume, like=like)[None]
    _check_latents(searcher, names, latents, file=volume)
    prompts = cached_prompts(searcher.folder, searcher.encoder, findings, template)
    scale = searcher.encoder.logit_scale
    if not np.isfinite(scale):
        raise ModelError(f"model {searcher.encoder.path}: its logit scale {scale} is not finite "
                         "(a diverged or damaged checkpoint)")
    return probs_table(names, presence_probs(latents, prompts, scale), findings)
