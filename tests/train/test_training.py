"""Training: a short real run, resume == uninterrupted run, global-batch loss, recall metric."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from ctsearch.data.text import TextField, clean_text
from ctsearch.errors import DataError, UsageError
from ctsearch.eval.retrieval import random_recall, recall_at_k
from ctsearch.models import load_checkpoint, model_preset
from ctsearch.models.loss import clip_loss
from ctsearch.train.batches import split_rows
from ctsearch.train.config import ModelPreset, TrainCfg
from ctsearch.train.loop import build_model, train


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    from ctsearch.data.phantom import synth

    out = tmp_path_factory.mktemp("train_data")
    synth(out, n_volumes=8, seed=4, workers=1, valid_fraction=0.3)
    return out


def _cfg(epochs: int) -> TrainCfg:
    return TrainCfg(epochs=epochs, batch_size=2, lr=1e-3, warmup_steps=2, checkpoint_every=2)


def test_short_run_writes_model_and_metrics(phantoms, tmp_path):
    m = train(phantoms, tmp_path / "run", preset="tiny", tc=_cfg(2), cache=tmp_path / "cache",
              workers=1)
    lines = (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and {"val_loss", "R@5", "R@10"} <= set(json.loads(lines[-1]))
    assert m["random"]["R@5"] == min(5, m["n_val"]) / m["n_val"]
    model = load_checkpoint(tmp_path / "run/model.pt")
    assert model.cfg.text.tokenizer == "tokenizer" and (tmp_path / "run/tokenizer").is_dir()
    x = torch.zeros(1, 1, *model.cfg.preprocess.shape)
    assert model.encode_volume(x).shape == (1, model.cfg.clip.dim_latent)


def test_resume_equals_uninterrupted(phantoms, tmp_path):
    cache, steps = tmp_path / "cache", []
    train(phantoms, tmp_path / "full", preset="tiny", tc=_cfg(2), cache=cache, workers=1,
          progress=lambda s, t, loss: steps.append(s))

    def killed(step, total, loss):
        if step == len(steps) // 2 + 1:  # mid-way, after the checkpoint of the step before
            raise KeyboardInterrupt

    # the tokenizers library's WordPiece trainer is not deterministic: share one vocabulary
    shutil.copytree(tmp_path / "full/tokenizer", tmp_path / "part/tokenizer")
    with pytest.raises(KeyboardInterrupt):
        train(phantoms, tmp_path / "part", preset="tiny", tc=_cfg(2), cache=cache, workers=1,
              progress=killed)
    train(phantoms, tmp_path / "part", preset="tiny", tc=_cfg(2), cache=cache, workers=1,
          resume=True)
    a = torch.load(tmp_path / "full/model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "part/model.pt", weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_patient_holdout_when_no_valid_split():
    rows = [{"split": "train", "patient": f"p{i // 2}", "volume": str(i)} for i in range(20)]
    tr, va = split_rows(rows, 0.2, 0)
    assert len(va) == 4 and not {r["patient"] for r in tr} & {r["patient"] for r in va}
    assert clean_text(' "Nodule" (7 mm) ') == "Nodule 7 mm"


def test_recall_closed_form_and_chunking():
    eye = torch.eye(12)
    assert recall_at_k(eye, eye, ks=(1, 5)) == {"R@1": 1.0, "R@5": 1.0}
    g = torch.Generator().manual_seed(0)
    t, i = torch.randn(50, 8, generator=g), torch.randn(50, 8, generator=g)
    assert recall_at_k(t, i, chunk=7) == recall_at_k(t, i, chunk=4096)
    assert random_recall(1564, ks=(5,))["R@5"] == pytest.approx(5 / 1564)


def _rank(rank: int, world: int, port: int, text, image, out) -> None:
    import torch.distributed as dist

    from ctsearch.models.loss import global_clip_loss

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    half = text.shape[0] // world
    sl = slice(rank * half, (rank + 1) * half)
    t, i = text[sl].clone().requires_grad_(), image[sl].clone()
    loss = global_clip_loss(t, i, torch.tensor(3.0))
    loss.backward()
    out[rank] = torch.cat([loss.detach()[None], t.grad.flatten()])
    dist.destroy_process_group()


def test_global_batch_loss_over_two_ranks():
    import socket

    import torch.multiprocessing as mp

    g = torch.Generator().manual_seed(1)
    text = torch.nn.functional.normalize(torch.randn(8, 4, generator=g), dim=-1)
    image = torch.nn.functional.normalize(torch.randn(8, 4, generator=g), dim=-1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_rank, args=(2, port, text, image, out), nprocs=2)
    full = clip_loss(text, image, torch.tensor(3.0))
    assert out[0][0].item() == pytest.approx(full.item(), abs=1e-6)
    assert out[1][0].item() == pytest.approx(full.item(), abs=1e-6)


def test_freeze_vision_keeps_ctvit_weights(phantoms, tmp_path):
    tc = _cfg(1)
    tc.freeze_vision = True
    train(phantoms, tmp_path / "run", preset="tiny", tc=tc, cache=tmp_path / "cache",
          workers=1)
    trained = torch.load(tmp_path / "run/model.pt", weights_only=True)["state_dict"]
    from ctsearch.models import CTCLIP, model_preset

    torch.manual_seed(0)
    cfg = model_preset("tiny")
    vocab = trained["text_transformer.embeddings.word_embeddings.weight"].shape[0]
    cfg.text.bert["vocab_size"] = vocab
    init = CTCLIP(cfg).state_dict()
    key = "visual_transformer.to_patch_emb.2.weight"
    assert torch.equal(trained[key], init[key])
    assert not torch.equal(trained["to_visual_latent.weight"], init["to_visual_latent.weight"])


def test_local_hf_text_encoder_folder(phantoms, tmp_path):
    """--text-encoder DIR: a BERT-family folder (weights + tokenizer) is loaded, not downloaded."""
    from transformers import BertConfig, BertModel

    from ctsearch.models.text import train_wordpiece

    folder = tmp_path / "my-bert"
    tok = train_wordpiece(["left pleural effusion", "no nodule", "cardiomegaly"], folder, 200)
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=64,
                                max_position_embeddings=128))
    bert.save_pretrained(folder)
    tc = _cfg(1)
    tc.lr = 0.0  # no update: the trained text tower must equal the folder's weights
    tc.text_lr = 0.0
    train(phantoms, tmp_path / "run", preset="tiny", text_encoder=str(folder), tc=tc,
          cache=tmp_path / "cache", workers=1)
    model = load_checkpoint(tmp_path / "run/model.pt")
    assert model.cfg.text.source == "local" and model.cfg.text.path == str(folder)
    key = "embeddings.word_embeddings.weight"
    assert torch.equal(model.text_transformer.state_dict()[key], bert.state_dict()[key])


def test_freeze_text_keeps_the_pretrained_tower(phantoms, tmp_path):
    """--freeze-text: the local folder's weights come out unchanged, its projection trains."""
    from transformers import BertConfig, BertModel

    from ctsearch.models.text import train_wordpiece

    folder = tmp_path / "bert"
    tok = train_wordpiece(["left pleural effusion", "no nodule", "cardiomegaly"], folder, 200)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=128)).save_pretrained(folder)
    tc = _cfg(1)
    tc.freeze_text = True
    train(phantoms, tmp_path / "run", preset="tiny", text_encoder=str(folder), tc=tc,
          cache=tmp_path / "cache", workers=1)
    model, bert = load_checkpoint(tmp_path / "run/model.pt"), BertModel.from_pretrained(folder)
    for key, value in bert.state_dict().items():
        assert torch.equal(model.text_transformer.state_dict()[key], value), key


def test_augment_shifts_with_padding():
    from ctsearch.train.batches import augment

    x = torch.arange(2 * 6 * 8 * 8, dtype=torch.float32).reshape(2, 1, 6, 8, 8)
    torch.manual_seed(3)
    y = augment(x, 2)
    assert y.shape == x.shape and torch.equal(augment(x, 0), x)
    torch.manual_seed(3)
    d = torch.randint(-2, 3, (3,)).tolist()  # the first volume's shift
    src = tuple(slice(max(0, -s), n - max(0, s)) for s, n in zip(d, (6, 8, 8), strict=True))
    dst = tuple(slice(max(0, s), n - max(0, -s)) for s, n in zip(d, (6, 8, 8), strict=True))
    assert (y[(0, 0, *dst)] - x[(0, 0, *src)]).abs().max() < 0.2  # shifted content + light noise


def test_wordpiece_vocabulary_is_deterministic(tmp_path):
    from ctsearch.models.text import SPECIAL, train_wordpiece

    texts = ["Left pleural effusion.", "No nodule; pleural thickening.", "Pleural effusion!"] * 3
    a = train_wordpiece(texts, tmp_path / "a", vocab_size=60)
    b = train_wordpiece(list(reversed(texts)), tmp_path / "b", vocab_size=60)
    assert (tmp_path / "a/vocab.txt").read_text() == (tmp_path / "b/vocab.txt").read_text()
    vocab = (tmp_path / "a/vocab.txt").read_text().split()
    assert vocab[:5] == list(SPECIAL) and vocab.index("pleural") < vocab.index("effusion")
    pair = ["pleural", "effusion"]
    assert a.tokenize("pleural effusion") == pair == b.tokenize("Pleural effusion")
    pieces = a.tokenize("pleura")  # unseen word: greedy character pieces
    assert pieces[0] == "p" and all(p.startswith("##") for p in pieces[1:])


def _weights(seed: int) -> dict:
    return build_model(model_preset("tiny"), seed=seed).state_dict()


def test_seed_determines_initial_weights():
    a, b, c = _weights(0), _weights(0), _weights(1)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for key in ("visual_transformer.to_patch_emb.2.weight", "to_visual_latent.weight",
                "to_text_latent.weight"):
        assert not torch.equal(a[key], c[key]), key


@pytest.mark.parametrize("seed", [0, 1])
def test_train_initialises_from_its_seed(phantoms, tmp_path, seed):
    """epochs=0: model.pt holds the initial weights, which are build_model's for tc.seed."""
    tc = TrainCfg(epochs=0, seed=seed, codebook_init=False)
    m = train(phantoms, tmp_path / "run", preset="tiny", tc=tc, cache=tmp_path / "cache",
              workers=1)
    assert m == {"best": None}
    saved = torch.load(tmp_path / "run/model.pt", weights_only=True)
    assert saved["extras"]["train"]["seed"] == seed
    assert saved["extras"]["train"]["text_field"] == "findings"
    assert type(saved["extras"]["train"]["text_field"]) is str  # plain values in checkpoints
    expected = build_model(load_checkpoint(tmp_path / "run/model.pt").cfg, seed=seed)
    for key, value in expected.state_dict().items():
        assert torch.equal(saved["state_dict"][key], value), key


def test_text_field_and_preset_are_checked(tmp_path):
    assert TrainCfg(text_field="impressions").text_field is TextField.impressions
    with pytest.raises(UsageError, match="text field 'findngs': choose one of findings, "
                                         "impressions, both"):
        TrainCfg(text_field="findngs")
    tc = TrainCfg()
    tc.text_field = "impresions"  # edited after construction: train() checks before any work
    with pytest.raises(UsageError, match="text field 'impresions'"):
        train(tmp_path / "no-data", tmp_path / "run", tc=tc)
    with pytest.raises(UsageError, match="model preset 'huge': choose one of paper, tiny"):
        train(tmp_path / "no-data", tmp_path / "run", preset="huge")
    with pytest.raises(UsageError, match="TrainCfg.batch_size must be >= 1, got 0"):
        TrainCfg(batch_size=0)
    assert TrainCfg.for_preset(ModelPreset.paper).lr == 1.25e-6
    assert not (tmp_path / "run").exists()


def test_no_usable_volume_is_a_data_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no usable volume"):
        train(tmp_path / "empty", tmp_path / "run", tc=TrainCfg(epochs=1),
              cache=tmp_path / "cache", workers=1)
