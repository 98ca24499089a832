"""Zero-shot detection: official probabilities on the fixture, index-based detect, CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from ctsearch.cli.main import app
from ctsearch.data.schema import PATHOLOGIES
from ctsearch.errors import UsageError
from ctsearch.search import QueryError, Searcher
from ctsearch.search.modes import Template
from ctsearch.search.zeroshot import (
    SEVEN,
    TEMPLATES,
    check_template,
    detect,
    presence_probs,
    prompt_embeddings,
    prompt_texts,
    template_pair,
)


def test_official_fixture_probabilities(shared):
    from ctsearch.models import load_checkpoint, official_config

    root = shared / "fixtures/ctclip_official/tiny"
    c = json.loads((root / "config.json").read_text())
    cfg = official_config(ctvit=c["ctvit_kwargs"], ctclip=c["ctclip_kwargs"],
                          bert=c["bert_config_kwargs"])
    inp = torch.load(root / "inputs.pt", weights_only=True)
    expected = torch.load(root / "expected.pt", weights_only=True)
    model = load_checkpoint(root / "state_dict.pt", cfg)
    with torch.no_grad():
        image = model.encode_volume(inp["volume"]).numpy()
        prompts = torch.stack([model.encode_text(ids, mask) for ids, mask in zip(
            inp["prompt_input_ids"], inp["prompt_attention_mask"], strict=True)]).numpy()
    probs = presence_probs(image, prompts, float(model.logit_scale.detach()))
    np.testing.assert_allclose(probs, expected["zero_shot_probs"][..., 0].numpy(), atol=1e-5)


def test_closed_form_and_templates():
    latents = np.array([[1.0, 0.0]], np.float32)
    prompts = np.array([[[1.0, 0.0], [0.0, 1.0]]], np.float32)  # present along x
    p = presence_probs(latents, prompts, logit_scale=2.0)
    assert p[0, 0] == pytest.approx(np.exp(2) / (np.exp(2) + 1))
    assert prompt_texts(["Cardiomegaly"]) == [("Cardiomegaly is present.",
                                               "Cardiomegaly is not present.")]
    assert template_pair("v1") == ("{}.", "not {}.")
    assert template_pair("{} seen|no {}") == ("{} seen", "no {}")
    with pytest.raises(UsageError, match="PRESENT|ABSENT") as err:
        template_pair("nonsense")
    assert ("official, v1, there-is, observed, evidence, findings, positive, ensemble"
            in str(err.value))
    assert check_template("there-is") is Template.there_is
    assert check_template("{} seen|no {}") == "{} seen|no {}"
    with pytest.raises(UsageError, match="one {} each"):
        check_template("{} and {}|no {}")


def test_seven_templates_and_their_ensemble(world):
    assert len(SEVEN) == 7 and len({TEMPLATES[t] for t in SEVEN}) == 7
    assert all(p.count("{}") == 1 and a.count("{}") == 1 for p, a in TEMPLATES.values())
    assert template_pair("there-is") == ("There is {}.", "There is no {}.")
    enc = Searcher("base", world["home"]).encoder
    each = np.stack([prompt_embeddings(enc, ["Emphysema", "Cardiomegaly"], t) for t in SEVEN])
    ens = prompt_embeddings(enc, ["Emphysema", "Cardiomegaly"], "ensemble")
    mean = each.mean(axis=0)
    np.testing.assert_allclose(ens, mean / np.linalg.norm(mean, axis=-1, keepdims=True),
                               atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(ens, axis=-1), 1.0, atol=1e-6)


def test_detect_all_equals_per_volume_and_caches_prompts(world):
    s = Searcher("base", world["home"])
    cached = lambda: set((s.folder / "prompts").glob("*.npy"))  # noqa: E731
    before = cached()
    table = detect(s, all_volumes=True)
    after = cached()
    assert table.column_names == ["volume", *PATHOLOGIES] and table.num_rows == 10
    one = detect(s, like=s.rows[4]["volume"])
    np.testing.assert_allclose([one.column(p)[0].as_py() for p in PATHOLOGIES],
                               [table.column(p)[4].as_py() for p in PATHOLOGIES], atol=1e-6)
    assert len(after - before) <= 1 and cached() == after  # the second call reused the cache
    custom = detect(s, findings=["pneumothorax"], all_volumes=True, template="{}|no {}")
    assert custom.column_names == ["volume", "pneumothorax"]
    with pytest.raises(QueryError, match="^give exactly one of volume, like, all_volumes$"):
        detect(s)
    with pytest.raises(QueryError, match="^finding text is empty$"):
        detect(s, findings=[" "], all_volumes=True)
    with pytest.raises(UsageError, match="template 'nonsense'"):
        detect(s, all_volumes=True, template="nonsense")


def test_detect_cli_writes_parquet_and_json(world, tmp_path):
    runner = CliRunner()
    out = tmp_path / "probs.parquet"
    res = runner.invoke(app, ["detect", "--index", "base", "--home", str(world["home"]),
                              "--all", "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pq.read_table(out)
    assert table.num_rows == 10 and table.column_names[1:] == list(PATHOLOGIES)
    name = table.column("volume")[0].as_py()
    res = runner.invoke(app, ["detect", "--index", "base", "--home", str(world["home"]),
                              "--like", name, "--finding", "Pleural effusion", "--json"])
    assert res.exit_code == 0 and list(json.loads(res.stdout)[0]) == ["volume",
                                                                      "Pleural effusion"]
    res = runner.invoke(app, ["detect", "--index", "base", "--home", str(world["home"])])
    assert res.exit_code == 2 and "exactly one" in res.output
    res = runner.invoke(app, ["detect", "--index", "base", "--home", str(world["home"]), "--all",
                              "--template", "offical"])
    said = " ".join(res.output.split())  # the one error line, however the console wraps it
    assert res.exit_code == 2 and said.startswith("error: template 'offical'")  # before loading
    assert "official, v1, there-is, observed, evidence, findings, positive, ensemble" in said




def test_unknown_label_suggests_the_nearest(world):
    s = Searcher("base", world["home"])
    with pytest.raises(QueryError, match="did you mean 'Pleural effusion'"):
        s.query(report="x", labels=("pleural efusion",))


def test_detect_metrics_need_labels(tmp_path):
    from ctsearch.bench.detect import run_detect_bench
    from ctsearch.bench.query import _model, synthetic_index

    ckpt = _model(tmp_path / "m", "tiny")
    folder = synthetic_index(tmp_path / "home", "nolabels", ckpt, 30)
    import pyarrow.parquet as pq

    from ctsearch.search.store import VOLUMES

    table = pq.read_table(folder / VOLUMES)
    for p in PATHOLOGIES:
        i = table.column_names.index(p)
        table = table.set_column(i, p, pa_nulls(table.num_rows, table.schema.field(p).type))
    pq.write_table(table, folder / VOLUMES)
    with pytest.raises(ValueError, match="has no labels"):
        run_detect_bench("nolabels", tmp_path / "home", split=None, draws=2)


def pa_nulls(n, typ):
    import pyarrow as pa

    return pa.nulls(n, typ)
