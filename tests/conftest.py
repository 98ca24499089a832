"""Shared fixtures: tiny NIfTI writers and a hand-built CT-RATE tree with known answers."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ctsearch.data.schema import METADATA_COLUMNS, PATHOLOGIES, REPORT_COLUMNS

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LPS_AFFINE = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS affine of an (L, P, S) voxel array


@pytest.fixture
def shared() -> Path:
    """The workplace's shared fixtures; tests using it skip on a user's clone."""
    if not SHARED.is_dir():
        pytest.skip("../shared fixtures not available")
    return SHARED


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None, blank: bool = False,
                scl: tuple[float, float] | None = None) -> Path:
    """Save `data` with `affine` (qform/sform code 1), or a blank v1-style header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, None if blank else affine)
    if blank:
        img.header.set_qform(None, code=0)
        img.header.set_sform(None, code=0)
    else:
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
    if scl is not None:
        img.header.set_slope_inter(*scl)
    nib.save(img, str(path))
    return path


def lps_affine(spacing_xyz: tuple[float, float, float]) -> np.ndarray:
    """RAS affine for an array whose axes run toward L, P, S with the given voxel sizes."""
    aff = LPS_AFFINE.copy()
    aff[:3, :3] = aff[:3, :3] * np.asarray(spacing_xyz)
    return aff


def chest_hu(shape=(40, 36, 20), seed=0) -> np.ndarray:
    """A crude HU volume in (L, P, S) order: air, a body ellipse, two lungs, random texture."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    hu = np.full(shape, -1000.0)
    hu[(x / 0.9) ** 2 + (y / 0.8) ** 2 < 1] = 40.0
    hu[((np.abs(x) - 0.4) / 0.3) ** 2 + (y / 0.5) ** 2 < 1] = -850.0
    hu += rng.normal(0, 10, shape) + 30 * z  # depth gradient: superior brighter
    return hu.astype(np.float32)


def _write_csv(path: Path, header: list[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows)


def meta_row(name: str, shape, spacing_xyz, intercept=-1024.0, vendor="Philips") -> dict:
    """A metadata row in CT-RATE's format (XYSpacing bracket string, age 036Y)."""
    row = dict.fromkeys(METADATA_COLUMNS, "")
    row.update(VolumeName=name, Manufacturer=vendor, PatientSex="F", PatientAge="036Y",
               ConvolutionKernel="['Bl57d', '3']", Rows=shape[1], Columns=shape[0],
               XYSpacing=f"[{spacing_xyz[0]}, {spacing_xyz[1]}]", ZSpacing=spacing_xyz[2],
               RescaleIntercept=intercept, RescaleSlope=1, NumberofSlices=shape[2])
    return row


@pytest.fixture
def mini_tree(tmp_path: Path) -> dict:
    """A CT-RATE tree with one v1 scan (two reconstructions, -1024 and -8192), one v2 scan."""
    ds = tmp_path / "dataset"
    hu = np.round(chest_hu())
    sp = (2.0, 2.0, 4.0)
    cases = {
        "train_1_a_1.nii.gz": ("train", -1024.0, "Philips"),
        "train_1_a_2.nii.gz": ("train", -8192.0, "Siemens Healthineers"),
        "valid_2_a_1.nii.gz": ("valid_fixed", -1024.0, "SIEMENS"),
    }
    meta, labels, reports = {"train": [], "valid": []}, {"train": [], "valid": []}, {"train": [],
                                                                                      "valid": []}
    for name, (folder, intercept, vendor) in cases.items():
        split, pid, scan, _ = name[: -len(".nii.gz")].split("_")
        stored = hu if folder.endswith("_fixed") else hu - intercept
        path = ds / folder / f"{split}_{pid}" / f"{split}_{pid}_{scan}" / name
        write_nifti(path, np.round(stored).astype(np.int16), lps_affine(sp))
        meta[split].append(meta_row(name, hu.shape, sp, intercept, vendor))
        lab = {p: int(i % 3 == 0) for i, p in enumerate(PATHOLOGIES)}
        labels[split].append({"VolumeName": name, **lab})
        reports[split].append({"VolumeName": name, "ClinicalInformation_EN": "Not given.",
                               "Technique_EN": "", "Findings_EN": f"Findings of {name}.",
                               "Impressions_EN": "Atelectasis."})
    for split, fname in (("train", "train"), ("valid", "validation")):
        _write_csv(ds / "metadata" / f"{fname}_metadata.csv", list(METADATA_COLUMNS), meta[split])
        # labels in a shuffled column order: the reader must join by name
        cols = ["VolumeName", *reversed(PATHOLOGIES)]
        lname = "train" if split == "train" else "valid"
        _write_csv(ds / "multi_abnormality_labels" / f"{lname}_predicted_labels.csv", cols,
                   labels[split])
        _write_csv(ds / "radiology_text_reports" / f"{fname}_reports.csv", list(REPORT_COLUMNS),
                   reports[split])
    return {"root": tmp_path, "hu": hu, "spacing_xyz": sp, "names": list(cases)}


def tiny_checkpoint(folder: Path, texts: list[str], seed: int = 0) -> Path:
    """A tiny-preset CT-CLIP with seeded random weights + a WordPiece tokenizer beside it."""
    import torch

    from ctsearch.models import CTCLIP, model_preset, save_checkpoint
    from ctsearch.models.text import train_wordpiece

    folder.mkdir(parents=True, exist_ok=True)
    tok = train_wordpiece(texts, folder / "tokenizer", vocab_size=300)
    cfg = model_preset("tiny")
    cfg.text.bert["vocab_size"] = len(tok)
    cfg.text.tokenizer, cfg.text.max_length = "tokenizer", 64
    torch.manual_seed(seed)
    return save_checkpoint(CTCLIP(cfg).eval(), folder / f"model-{seed}.pt")


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict:
    """10 phantoms, two tiny random-weight checkpoints, and the index `base` built from them."""
    from ctsearch.data import read_any
    from ctsearch.data.phantom import synth
    from ctsearch.data.text import report_text
    from ctsearch.search import build_index

    root = tmp_path_factory.mktemp("search")
    synth(root / "data", n_volumes=10, seed=7, workers=1)
    texts = [report_text(r) for r in read_any(root / "data").to_pylist()]
    ckpt = tiny_checkpoint(root / "model0", texts)
    other = tiny_checkpoint(root / "model1", texts, seed=1)
    info = build_index(root / "data", ckpt, "base", home=root / "home", workers=1)
    return {"root": root, "data": root / "data", "ckpt": ckpt, "other": other,
            "home": root / "home", "info": info}


def tiny_official_model():
    """A CT-CLIP at a tiny official config (seeded), for checkpoint conversion tests."""
    import torch

    from ctsearch.models import CTCLIP, official_config

    cfg = official_config(ctvit=dict(dim=16, codebook_size=8, image_size=40, patch_size=20,
                                     temporal_patch_size=10, spatial_depth=1, temporal_depth=1,
                                     dim_head=8, heads=2),
                          ctclip=dict(dim_latent=8),
                          bert=dict(vocab_size=50, hidden_size=64, num_hidden_layers=1,
                                    num_attention_heads=1, intermediate_size=32,
                                    max_position_embeddings=16))
    cfg.vision.depth_size = 20
    torch.manual_seed(0)
    return CTCLIP(cfg).eval()


def checkpoint_files(model, tmp_path: Path) -> list[Path]:
    """`model` saved as the official, ClassFine, DDP (`module.`) and ctsearch checkpoint kinds."""
    import torch

    from ctsearch.models import save_checkpoint, to_official

    official = to_official(model.state_dict(), model.cfg, position_ids=True)
    files = {"official.pt": official,
             "classfine.pt": {**{f"trained_model.{k}": v for k, v in official.items()},
                              "classifier.weight": torch.randn(18, 8),
                              "classifier.bias": torch.zeros(18)},
             "module.pt": {f"module.{k}": v for k, v in official.items()}}
    for name, sd in files.items():
        torch.save(sd, tmp_path / name)
    save_checkpoint(model, tmp_path / "own.pt")
    return [tmp_path / name for name in (*files, "own.pt")]
