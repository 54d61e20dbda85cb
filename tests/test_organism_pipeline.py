"""The organism pipeline: tokenizer, trained model, sae-lens SAEs, cache, resume, quality at ci.

The ci organism is built once per session (into ``$LLMFEATURES_HOME`` when set, so the book's
notebooks reuse it, else into a temporary folder).  Thresholds are for the ci model and sit far
above chance (facts: ~1/30 candidates; pronouns: 1/2; domains: 1/6; gender: 1/2).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from llmfeatures.cache import sha256_file
from llmfeatures.loaders import check_sae_matches, resid_hook
from llmfeatures.organism import pipeline
from llmfeatures.organism.pipeline import (
    ORGANISM_PRESETS,
    OrganismConfig,
    build_organism,
    organism_checkpoints,
    organism_info,
    organism_model,
    organism_sae,
)
from llmfeatures.organism.sae import SAETrainConfig, load_sae_folder, sae_metrics
from llmfeatures.organism.tokenizer import MIN_VOCAB, train_tokenizer
from llmfeatures.organism.train import (
    ModelConfig,
    TrainConfig,
    log_spaced_steps,
    pack_documents,
)

SCALE = "ci"


@pytest.fixture(scope="session")
def home(tmp_path_factory):
    """The cache root for this session; the ci organism lives under it."""
    old = os.environ.get("LLMFEATURES_HOME")
    root = old or str(tmp_path_factory.mktemp("organism_home"))
    os.environ["LLMFEATURES_HOME"] = root
    yield Path(root)
    if old is None:
        os.environ.pop("LLMFEATURES_HOME", None)


@pytest.fixture(scope="session")
def organism(home):
    """The built ci organism's cache folder (built once per session)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_organism(SCALE)


@pytest.fixture(scope="session")
def model(organism):
    return organism_model(SCALE, device="cpu")


# -- pieces that need no trained model --------------------------------------------------------
def test_tokenizer_errors_are_clear():
    with pytest.raises(ValueError, match="too small"):
        train_tokenizer(["some text"], vocab_size=MIN_VOCAB - 1)
    with pytest.raises(ValueError, match="no text"):
        train_tokenizer([], vocab_size=512)


def test_pack_documents_rows_start_at_documents():
    texts = [f"Doc number {i} says hello to the world." * (1 + i % 3) for i in range(40)]
    tok = train_tokenizer(texts, vocab_size=300)
    rows = pack_documents(texts, tok, n_ctx=32)
    assert rows.ndim == 2 and rows.shape[1] == 32
    assert (rows[:, 0] == tok.bos_token_id).all()
    # every document's tokens appear, framed by bos ... eos
    n_docs = int((rows == tok.eos_token_id).sum())
    assert n_docs >= len(texts)
    with pytest.raises(ValueError, match="no documents"):
        pack_documents([], tok, 32)


def test_lr_schedule_warms_up_then_decays():
    cfg = TrainConfig(n_steps=200, lr=1e-3, warmup_frac=0.1, min_lr_frac=0.1)
    lrs = [cfg.lr_at(s) for s in range(200)]
    assert lrs[0] < lrs[10] and max(lrs) == pytest.approx(1e-3)
    assert lrs[-1] == pytest.approx(1e-4, rel=0.05)
    assert all(a >= b for a, b in zip(lrs[20:], lrs[21:]))
    # warm-up over 20 steps, then half a cosine from 1e-3 to 1e-4 over the remaining 180
    assert lrs[0] == pytest.approx(1e-3 / 20) and lrs[20] == pytest.approx(1e-3)
    assert lrs[110] == pytest.approx(5.5e-4)
    # chapter 6's training uses the same schedule (one meaning of lr_at in the package)
    from llmfeatures.icl.train import ICLTrainConfig

    icl = ICLTrainConfig(n_steps=200, lr=1e-3, warmup_steps=20, schedule="cosine")
    assert [icl.lr_at(s) for s in range(200)] == pytest.approx(lrs)
    assert log_spaced_steps(500) == [0, 8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 500]
    assert log_spaced_steps(500, first=16, per_octave=1) == [0, 16, 32, 64, 128, 256, 500]


def test_sae_training_uses_the_current_sae_lens_runner(monkeypatch):
    """train_sae goes through LanguageModelSAETrainingRunner, not the deprecated SAETrainingRunner
    (which sae-lens keeps only as a subclass that warns)."""
    import sae_lens
    from transformer_lens import HookedTransformer

    from llmfeatures.organism.sae import train_sae
    from llmfeatures.organism.train import hooked_config

    used = []

    class Spy(sae_lens.LanguageModelSAETrainingRunner):
        def __init__(self, *args, **kwargs):
            used.append(type(self).__name__)
            super().__init__(*args, **kwargs)

    def deprecated(*args, **kwargs):
        raise AssertionError("the deprecated SAETrainingRunner was used")

    monkeypatch.setattr(sae_lens, "LanguageModelSAETrainingRunner", Spy)
    monkeypatch.setattr(sae_lens, "SAETrainingRunner", deprecated)
    texts = [f"Doc number {i} says hello to the world." for i in range(60)]
    tok = train_tokenizer(texts, vocab_size=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(hooked_config(ModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32,
                                                            n_ctx=32), len(tok), 0), tokenizer=tok)
        rows = pack_documents(texts, tok, 32)
        sae = train_sae(model, rows, 0, SAETrainConfig(expansion=2, architecture="topk", k=4,
                                                       training_tokens=1024, batch_tokens=128,
                                                       dead_window=5), device="cpu")
    assert used == ["Spy"]
    assert sae.cfg.d_in == 16 and sae.cfg.d_sae == 32
    assert sae.cfg.metadata.hook_name == "blocks.0.hook_resid_post"
    with pytest.raises(ValueError, match=r"valid layers are 0\.\.0"):
        train_sae(model, rows, 1, SAETrainConfig())


def test_unknown_scale_lists_valid_ones():
    with pytest.raises(ValueError, match="ci, book, gpu, paper"):
        organism_model("huge")


# -- the built ci organism ----------------------------------------------------------------------
@pytest.mark.slow
def test_tokenizer_round_trip_and_str_tokens(model):
    tok = model.tokenizer
    text = "The capital of France is Paris. She plays the violin.\n    return x + 1"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    strs = model.to_str_tokens("The capital of France is")
    assert strs[0] == "<|bos|>" and " capital" in strs
    assert model.to_tokens("Paris")[0, 0].item() == tok.bos_token_id
    assert model.cfg.d_vocab == len(tok)


@pytest.mark.slow
def test_generate_continues_a_prompt(model):
    out = model.generate("The capital of France is", max_new_tokens=6, do_sample=False,
                         verbose=False)
    assert isinstance(out, str) and out.startswith("The capital of France is")
    assert len(out) > len("The capital of France is")


@pytest.mark.slow
def test_checkpoints_exist_and_load(organism):
    cfg = ORGANISM_PRESETS[SCALE]
    steps = organism_checkpoints(SCALE)
    assert steps == log_spaced_steps(cfg.train.n_steps)
    early = organism_model(SCALE, checkpoint=0, device="cpu")
    final = organism_model(SCALE, device="cpu")
    prompt = "The capital of France is Paris. The language of France is French."
    assert early(prompt, return_type="loss").item() > final(prompt, return_type="loss").item() + 1
    history = json.loads((organism.path / "loss.json").read_text())
    assert history["val_loss"][-1] < history["val_loss"][0]
    assert (organism.path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="saved steps are"):
        organism_model(SCALE, checkpoint=3)


@pytest.mark.slow
def test_sae_loads_with_sae_lens(organism, model):
    from sae_lens import SAE

    for layer in range(model.cfg.n_layers):
        sae = SAE.load_from_disk(str(organism.path / f"saes/layer_{layer}"))
        assert sae.cfg.d_in == model.cfg.d_model
        assert sae.cfg.d_sae == ORGANISM_PRESETS[SCALE].sae.expansion * model.cfg.d_model
        assert sae.cfg.metadata.hook_name == resid_hook(layer) == f"blocks.{layer}.hook_resid_post"
        assert not sae.cfg.metadata.model_from_pretrained_kwargs
        cfg = json.loads((organism.path / f"saes/layer_{layer}/cfg.json").read_text())
        assert not cfg.get("model_from_pretrained_kwargs")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no misleading sae-lens warning for organism SAEs
        sae = organism_sae(0, SCALE, device="cpu")
    _, cache = model.run_with_cache("The capital of France is Paris")
    feats = sae.encode(cache["blocks.0.hook_resid_post"])
    assert feats.shape[-1] == sae.cfg.d_sae and (feats > 0).any()


@pytest.mark.slow
def test_quality_at_ci_scale(organism):
    m = organism.metrics
    assert m["fact_top1"] >= 0.35, m["fact_top1"]
    assert m["pronoun_agreement"] >= 0.85, m["pronoun_agreement"]
    assert m["probe_domain"] >= 0.9, m["probe_domain"]
    assert m["probe_gender"] >= 0.7, m["probe_gender"]
    for layer in range(ORGANISM_PRESETS[SCALE].model.n_layers):
        assert m[f"sae_L{layer}_fve"] >= 0.7
        assert 4 <= m[f"sae_L{layer}_l0"] <= 64
        assert m[f"sae_L{layer}_dead_frac"] < 0.3
    # dead latents are counted over all held-out (val) tokens, and that count is recorded
    val_rows = pipeline._Builder(organism, ORGANISM_PRESETS[SCALE], SCALE,
                                 torch.device("cpu")).rows("val")
    assert 0.8 * val_rows.numel() < m["sae_eval_tokens"] < val_rows.numel()  # minus bos/eos
    for key in ("addition_exact", "fewshot4_mean", "fewshot4_country_capital"):
        assert 0.0 <= m[key] <= 1.0
    info = organism_info(SCALE)
    assert info["complete"] and info["total_bytes"] > 0 and info["path"] == str(organism.path)


@pytest.mark.slow
def test_interrupted_build_resumes_from_last_stage(organism):
    art = pipeline.organism_dir(SCALE)
    model_digest = sha256_file(art.path / "model.pt")
    model_mtime = (art.path / "model.pt").stat().st_mtime_ns
    sae_file = art.path / "saes/layer_0/sae_weights.safetensors"
    sae_mtime = sae_file.stat().st_mtime_ns
    # simulate a build killed during the eval stage: the stage is missing from the manifest and
    # a stray temporary is left behind; the rebuild must run eval only
    art.forget("eval")
    (art.path / ".eval.json.x.tmp").mkdir()
    art2 = build_organism(SCALE)
    assert set(organism_info(SCALE)["stages_done"]) == set(pipeline.stage_names(
        ORGANISM_PRESETS[SCALE]))
    assert (art2.path / "model.pt").stat().st_mtime_ns == model_mtime  # not retrained
    assert sha256_file(art2.path / "model.pt") == model_digest
    assert sae_file.stat().st_mtime_ns == sae_mtime
    assert not list(art2.path.glob(".*.tmp"))  # the stray temporary was cleared
    assert "fact_top1" in art2.metrics
    assert art2.metrics["time_eval_s"] > 0 and (art2.path / "eval.json").exists()


@pytest.mark.slow
def test_corrupted_file_is_detected_and_rebuilt(organism):
    art = pipeline.organism_dir(SCALE)
    weights = art.path / "saes/layer_0/sae_weights.safetensors"
    good = sha256_file(weights)
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # truncate
    with pytest.warns(UserWarning, match="checksum"):
        sae = organism_sae(0, SCALE, device="cpu")
    assert weights.stat().st_size == len(data)
    assert sha256_file(weights) == good  # same seed, same SAE
    assert sae.cfg.d_in == ORGANISM_PRESETS[SCALE].model.d_model
    art = build_organism(SCALE)  # eval depended on the SAE: it was forgotten, now rebuilt
    assert "eval" in organism_info(SCALE)["stages_done"] and "fact_top1" in art.metrics


def test_sae_width_mismatch_is_a_clear_error(tmp_path):
    from sae_lens import SAE, TopKSAEConfig
    from transformer_lens import HookedTransformer

    from llmfeatures.organism.train import hooked_config

    sae = SAE.from_dict(TopKSAEConfig(d_in=16, d_sae=64, k=4).to_dict())
    sae.save_model(str(tmp_path / "sae"))
    tiny = HookedTransformer(hooked_config(ModelConfig(n_layers=1, d_model=32, n_heads=2,
                                                       d_mlp=64, n_ctx=16), 300, 0))
    with pytest.raises(ValueError, match="SAE/model mismatch.*d_in=16.*d_model=32"):
        load_sae_folder(tmp_path / "sae", tiny)
    with pytest.raises(ValueError, match="SAE/model mismatch"):
        check_sae_matches(tiny, sae)
    with pytest.raises(FileNotFoundError, match="No saved SAE"):
        load_sae_folder(tmp_path / "nothing")
    with pytest.raises(ValueError, match=r"acts must be \[n_tokens, 16\]"):
        sae_metrics(sae, torch.zeros(5, 32))


def test_bad_layer_is_a_clear_error():
    last = ORGANISM_PRESETS[SCALE].model.n_layers - 1
    with pytest.raises(ValueError, match=f"layers 0..{last}"):
        organism_sae(7, SCALE)


@pytest.mark.slow
def test_same_seed_gives_identical_weights(tmp_path, monkeypatch):
    tiny = OrganismConfig(
        vocab_size=400,
        model=ModelConfig(n_layers=1, d_model=32, n_heads=2, d_mlp=64, n_ctx=64),
        train=TrainConfig(n_steps=20, batch_size=8, eval_every=10, eval_rows=8),
        sae=SAETrainConfig(expansion=2, architecture="topk", k=4, training_tokens=8192,
                           batch_tokens=512, dead_window=5),
        n_fewshot_prompts=2,
        n_probe_docs=60,
    )
    monkeypatch.setitem(ORGANISM_PRESETS, SCALE, tiny)
    folders = []
    for run in ("a", "b"):
        monkeypatch.setenv("LLMFEATURES_HOME", str(tmp_path / run))
        for stage in ("world", "tokenizer", "model", "sae_L0"):
            pipeline._build(SCALE, until=stage, device="cpu")
        folders.append(pipeline.organism_dir(SCALE).path)
    a, b = folders
    for rel in ("corpus.json", "tokenizer.json", "saes/layer_0/sae_weights.safetensors"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    sa = torch.load(a / "model.pt", weights_only=True)
    sb = torch.load(b / "model.pt", weights_only=True)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # a different seed gives different weights
    monkeypatch.setitem(ORGANISM_PRESETS, SCALE, replace(tiny, seed=1))
    monkeypatch.setenv("LLMFEATURES_HOME", str(tmp_path / "c"))
    pipeline._build(SCALE, until="model", device="cpu")
    sc = torch.load(pipeline.organism_dir(SCALE).path / "model.pt", weights_only=True)
    assert not torch.equal(sa["embed.W_E"], sc["embed.W_E"])


def test_pipeline_api_is_reexported_lazily():
    import subprocess
    import sys

    import llmfeatures.organism as organism_pkg

    assert organism_pkg.build_organism is build_organism
    assert organism_pkg.ORGANISM_PRESETS is ORGANISM_PRESETS
    assert organism_pkg.OrganismConfig is OrganismConfig
    with pytest.raises(AttributeError, match="no attribute"):
        organism_pkg.not_a_name  # noqa: B018
    code = ("import sys, llmfeatures.organism; "
            "print('sae_lens' in sys.modules or 'transformer_lens' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
