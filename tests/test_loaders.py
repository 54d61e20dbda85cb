"""Tests for llmfeatures.loaders, all offline.

The paper-scale paths are exercised with small stand-ins built here (a 2-layer GPT-2 and a 2-layer
Llama from Hugging Face configs, an SAE saved with sae-lens), with the network switched off: any
socket connection raises, and the Hugging Face Hub is in offline mode.
"""

from __future__ import annotations

import pytest
import torch

from llmfeatures import loaders
from llmfeatures.loaders import (
    ModelUnavailableError,
    check_sae_matches,
    load_model,
    load_sae,
    resolve_model_name,
    sae_release_and_id,
)

WORDS = "the cat sat on a mat dog ran to park and she he walked home quickly".split()
SPECIAL = "<|endoftext|>"


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer():
    """A word-level fast tokenizer built locally (no files, no Hub)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate([SPECIAL, *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=SPECIAL, eos_token=SPECIAL, unk_token=SPECIAL
    )


@pytest.fixture(scope="module")
def tiny_gpt2(tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=len(tokenizer), n_positions=32)
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def tiny_llama(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    cfg = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(cfg).eval()


def _small_sae(d_in: int, hook_name: str, d_sae: int = 256):
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(2)
    cfg = StandardSAEConfig(
        d_in=d_in, d_sae=d_sae, metadata=SAEMetadata(hook_name=hook_name, model_name="stand-in")
    )
    sae = StandardSAE(cfg)
    with torch.no_grad():  # non-trivial biases so that a lost tensor would show
        sae.b_enc.normal_()
        sae.b_dec.normal_()
    return sae


# --------------------------------------------------------------------------------------------
# names and scales
# --------------------------------------------------------------------------------------------
def test_names_and_aliases_resolve() -> None:
    assert resolve_model_name("organism") == "organism"
    assert resolve_model_name("GPT2") == "gpt2-small"
    assert resolve_model_name("google/gemma-2-2b") == "gemma-2-2b"
    assert resolve_model_name("meta-llama/Llama-3.1-8B") == "llama-3.1-8b"
    assert set(loaders.MODEL_NAMES) >= {"organism", "gpt2-small", "gemma-2-2b", "llama-3.1-8b"}


@pytest.mark.parametrize("func", [load_model, lambda n: load_sae(n, 0)])
def test_unknown_model_name_lists_valid_names(func) -> None:
    with pytest.raises(ValueError, match="Unknown model name 'gpt5'") as err:
        func("gpt5")
    for name in ("organism", "gpt2-small", "gemma-2-2b", "llama-3.1-8b"):
        assert name in str(err.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda: load_model("organism", scale="huge"),
        lambda: load_model("gpt2-small", scale="huge"),
        lambda: load_sae("organism", 0, scale="huge"),
        lambda: loaders.load_world(scale="huge"),
    ],
)
def test_unknown_scale_is_rejected_with_valid_scales(call) -> None:
    with pytest.raises(ValueError, match="Unknown scale 'huge'") as err:
        call()
    assert "ci, book, gpu, paper" in str(err.value)


def test_checkpoints_only_for_the_organism_and_pythia() -> None:
    with pytest.raises(ValueError, match="without training checkpoints.*organism, pythia-70m"):
        load_model("gpt2-small", checkpoint=100)
    steps = loaders.model_checkpoints("EleutherAI/pythia-70m-deduped")
    assert steps[:4] == [0, 1, 2, 4] and steps[-1] == 143_000 and 512 in steps and 1000 in steps
    with pytest.raises(ValueError, match=r"no checkpoint at step 1500.*\[512, 1000, 2000\]"):
        load_model("pythia-70m", checkpoint=1500)


def test_pythia_checkpoint_without_network(no_network) -> None:
    with pytest.raises(ModelUnavailableError) as err:
        load_model("pythia-70m", checkpoint=512, device="cpu")
    _assert_unavailable_message(err.value, "pythia-70m", gated=False)


@pytest.fixture(scope="module")
def tiny_pythia(tokenizer):
    """Two 'checkpoints' of a 2-layer GPT-NeoX (Pythia's architecture, partial rotary)."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    cfg = GPTNeoXConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                        num_attention_heads=4, vocab_size=len(tokenizer),
                        max_position_embeddings=32, rotary_pct=0.25)
    out = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        out.append(GPTNeoXForCausalLM(cfg).eval())
    return out


def test_pythia_stand_in_loads_offline(no_network, tiny_pythia, tokenizer) -> None:
    models = [load_model("pythia-70m", hf_model=m, tokenizer=tokenizer, device="cpu")
              for m in tiny_pythia]
    x = models[0].to_tokens("the cat sat on a mat")
    # as from_pretrained does for Pythia, which was trained without a BOS token
    assert not models[0].cfg.default_prepend_bos and x.shape == (1, 6)
    for ours, theirs in zip(models, tiny_pythia):
        with torch.no_grad():
            diff = ours(x).log_softmax(-1) - theirs(x).logits.log_softmax(-1)
        assert diff.abs().max() < 1e-4, diff.abs().max()
    assert not torch.allclose(models[0](x), models[1](x)), "two checkpoints, two models"
    with pytest.raises(TypeError, match="not both"):
        load_model("pythia-70m", checkpoint=0, hf_model=tiny_pythia[0], tokenizer=tokenizer)


def test_organism_rejects_hub_options(tiny_gpt2) -> None:
    with pytest.raises(TypeError, match="hf_model"):
        load_model("organism", hf_model=tiny_gpt2)


# --------------------------------------------------------------------------------------------
# SAE ids
# --------------------------------------------------------------------------------------------
def test_sae_ids_follow_the_layer_convention() -> None:
    # the SAE the geometry paper used for the lobes (Gemma Scope, layer 12, 16k, L0 41)
    assert sae_release_and_id("gemma-2-2b", 12) == (
        "gemma-scope-2b-pt-res",
        "layer_12/width_16k/average_l0_41",
    )
    assert sae_release_and_id("gemma-2-2b", 3) == (
        "gemma-scope-2b-pt-res-canonical",
        "layer_3/width_16k/canonical",
    )
    # "layer L" = residual stream after block L: GPT-2 SAEs are keyed by the next block's resid_pre
    assert sae_release_and_id("gpt2-small", 3) == ("gpt2-small-res-jb", "blocks.4.hook_resid_pre")
    assert sae_release_and_id("gpt2-small", 11) == (
        "gpt2-small-res-jb",
        "blocks.11.hook_resid_post",
    )
    assert sae_release_and_id("llama-3.1-8b", 31) == ("llama_scope_lxr_8x", "l31r_8x")
    # an explicit id wins
    assert sae_release_and_id("gemma-2-2b", 12, sae_id="layer_12/width_16k/canonical") == (
        "gemma-scope-2b-pt-res-canonical",
        "layer_12/width_16k/canonical",
    )


def test_every_default_sae_id_exists_in_sae_lens() -> None:
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    for name, spec in loaders.PAPER_MODELS.items():
        for layer in range(spec.n_layers):
            release, sae_id = sae_release_and_id(name, layer)
            assert sae_id in directory[release].saes_map, (name, layer)
            assert directory[release].model in {spec.tl_name, name}


@pytest.mark.parametrize("layer", [-1, 26, 100])
def test_bad_layer_names_the_range(layer: int) -> None:
    with pytest.raises(ValueError, match=r"valid layers are 0\.\.25"):
        sae_release_and_id("gemma-2-2b", layer)


def test_foreign_release_needs_an_id() -> None:
    with pytest.raises(ValueError, match="needs an explicit sae_id"):
        sae_release_and_id("gemma-2-2b", 5, release="gemma-scope-2b-pt-mlp")


# --------------------------------------------------------------------------------------------
# hf_model stand-ins: converted fully offline
# --------------------------------------------------------------------------------------------
def _check_same_predictions(model, hf_model, tokenizer) -> None:
    text = "the cat sat on a mat and the dog ran to park"
    tokens = model.to_tokens(text)
    assert tokens.shape[1] == len(text.split()) + 1  # BOS + one token per word
    assert tokens[0, 0].item() == tokenizer.bos_token_id
    with torch.no_grad():
        ours = model(tokens).log_softmax(-1)
        theirs = hf_model(tokens).logits.log_softmax(-1)
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()


def test_gpt2_stand_in_loads_offline(no_network, tiny_gpt2, tokenizer) -> None:
    model = load_model("gpt2-small", hf_model=tiny_gpt2, tokenizer=tokenizer, device="cpu")
    from transformer_lens import HookedTransformer

    assert isinstance(model, HookedTransformer)
    assert (model.cfg.n_layers, model.cfg.d_model, model.cfg.d_vocab) == (2, 64, len(tokenizer))
    assert model.cfg.normalization_type == "LNPre"  # layer norm folded, as from_pretrained does
    _check_same_predictions(model, tiny_gpt2, tokenizer)
    assert model.to_str_tokens("the cat")[1:] == ["the", "cat"]
    out = model.generate("the cat", max_new_tokens=3, verbose=False, do_sample=False)
    assert out.startswith("the cat") and len(out.split()) == 5


def test_gpt2_stand_in_without_processing(no_network, tiny_gpt2, tokenizer) -> None:
    model = load_model(
        "gpt2",
        hf_model=tiny_gpt2,
        tokenizer=tokenizer,
        device="cpu",
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
    )
    assert model.cfg.normalization_type == "LN"
    # unprocessed weights are the HF weights: embedding and unembedding are tied
    assert torch.equal(model.W_E, tiny_gpt2.transformer.wte.weight)
    _check_same_predictions(model, tiny_gpt2, tokenizer)


def test_llama_stand_in_loads_offline(no_network, tiny_llama, tokenizer) -> None:
    model = load_model("llama-3.1-8b", hf_model=tiny_llama, tokenizer=tokenizer, dtype="float32")
    assert model.cfg.n_key_value_heads == 2 and model.cfg.normalization_type == "RMSPre"
    _check_same_predictions(model.to("cpu"), tiny_llama, tokenizer)


def test_stand_in_with_unsupported_option_is_rejected(no_network, tiny_gpt2, tokenizer) -> None:
    with pytest.raises(TypeError, match="not supported with hf_model"):
        load_model("gpt2-small", hf_model=tiny_gpt2, tokenizer=tokenizer, first_n_layers=1)


def test_small_gemma_stand_in_is_rejected(no_network, tokenizer) -> None:
    from transformers import Gemma2Config, Gemma2ForCausalLM

    cfg = Gemma2Config(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        vocab_size=len(tokenizer),
    )
    with pytest.raises(ValueError, match="must be the real gemma-2-2b .hidden size 2304"):
        load_model("gemma-2-2b", hf_model=Gemma2ForCausalLM(cfg), tokenizer=tokenizer)


def test_tokenizer_larger_than_vocabulary_is_rejected(no_network, tokenizer) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    small = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=5))
    with pytest.raises(ValueError, match="tokenizer has 17 tokens"):
        load_model("gpt2-small", hf_model=small, tokenizer=tokenizer)


# --------------------------------------------------------------------------------------------
# no network: a clear ModelUnavailableError
# --------------------------------------------------------------------------------------------
def _assert_unavailable_message(err: ModelUnavailableError, name: str, gated: bool) -> None:
    msg = str(err)
    assert name in msg
    assert "Hugging Face Hub, which cannot be reached" in msg
    assert "Colab" in msg and "name='organism'" in msg
    assert ("huggingface-cli login" in msg) == gated
    assert isinstance(err, RuntimeError)
    assert err.__cause__ is not None  # the library's own error is kept


def test_paper_model_without_network(no_network) -> None:
    with pytest.raises(ModelUnavailableError) as err:
        load_model("gpt2-small", device="cpu")
    _assert_unavailable_message(err.value, "gpt2-small", gated=False)


def test_gated_paper_model_without_network(no_network) -> None:
    with pytest.raises(ModelUnavailableError) as err:
        load_model("gemma-2-2b", device="cpu")
    _assert_unavailable_message(err.value, "gemma-2-2b", gated=True)


def test_stand_in_without_tokenizer_needs_the_hub(no_network, tiny_gpt2) -> None:
    with pytest.raises(ModelUnavailableError, match="tokenizer of gpt2-small"):
        load_model("gpt2-small", hf_model=tiny_gpt2)


@pytest.mark.parametrize(
    ("model_name", "layer"),
    [("gemma-2-2b", 12), ("gpt2-small", 5), ("llama-3.1-8b", 0), ("pythia-70m", 3)],
)
def test_paper_sae_without_network(no_network, model_name: str, layer: int) -> None:
    with pytest.raises(ModelUnavailableError) as err:
        load_sae(model_name, layer, device="cpu")
    release, sae_id = sae_release_and_id(model_name, layer)
    assert f"{release}/{sae_id}" in str(err.value)
    _assert_unavailable_message(err.value, model_name, gated=False)


def _hub_errors() -> list[Exception]:
    """The real exception types a Hub failure surfaces as with the installed huggingface_hub
    (which talks through ``httpx2``), plus the older ``httpx`` ones."""
    import httpx
    import httpx2
    from huggingface_hub.errors import GatedRepoError

    request = httpx2.Request("GET", "https://huggingface.co/x")
    response = httpx2.Response(403, request=request)
    return [
        GatedRepoError("Access to model google/gemma-2-2b is restricted.", response=response),
        httpx.ConnectError("connection refused"),
        httpx2.ConnectError("[Errno -2] Name or service not known", request=request),
        httpx2.ReadTimeout("timed out", request=request),
        httpx2.HTTPStatusError("503 Service Unavailable", request=request,
                               response=httpx2.Response(503, request=request)),
    ]


def test_gated_and_connection_errors_are_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx2
    from transformer_lens import HookedTransformer

    errors = _hub_errors()
    assert not any(isinstance(e, OSError) for e in errors[2:])  # httpx2's own types escape OSError
    assert all(isinstance(e, httpx2.HTTPError) for e in errors[2:])
    for error in errors:

        def fail(*args: object, _error: Exception = error, **kwargs: object) -> None:
            raise _error

        monkeypatch.setattr(HookedTransformer, "from_pretrained", fail)
        with pytest.raises(ModelUnavailableError) as err:
            load_model("gemma-2-2b", device="cpu")
        _assert_unavailable_message(err.value, "gemma-2-2b", gated=True)
        assert err.value.__cause__ is error
        assert type(error).__name__ in str(err.value)  # the cause is named


def test_hub_errors_from_sae_lens_are_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    from sae_lens import SAE

    for error in _hub_errors()[2:]:

        def fail(*args: object, _error: Exception = error, **kwargs: object) -> None:
            raise _error

        monkeypatch.setattr(SAE, "from_pretrained", fail)
        with pytest.raises(ModelUnavailableError, match="gpt2-small-res-jb") as err:
            load_sae("gpt2-small", 3, device="cpu")
        assert err.value.__cause__ is error


def test_other_errors_are_not_disguised(monkeypatch: pytest.MonkeyPatch) -> None:
    from transformer_lens import HookedTransformer

    def fail(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug, not a network problem")

    monkeypatch.setattr(HookedTransformer, "from_pretrained", fail)
    with pytest.raises(KeyError):
        load_model("gpt2-small", device="cpu")


# --------------------------------------------------------------------------------------------
# SAEs saved on disk; width checks
# --------------------------------------------------------------------------------------------
def test_sae_round_trip_from_disk(no_network, tmp_path, tiny_gpt2, tokenizer) -> None:
    model = load_model("gpt2-small", hf_model=tiny_gpt2, tokenizer=tokenizer, device="cpu")
    sae = _small_sae(64, "blocks.1.hook_resid_post")
    sae.save_model(tmp_path / "sae")
    loaded = load_sae("gpt2-small", 1, path=tmp_path / "sae", device="cpu", model=model)
    assert type(loaded) is type(sae)
    assert (loaded.cfg.d_in, loaded.cfg.d_sae) == (64, 256)
    assert loaded.cfg.metadata.hook_name == "blocks.1.hook_resid_post"
    for key, value in sae.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # the loaded SAE reads the model's activations: shape [batch, pos, d_sae]
    _, cache = model.run_with_cache("the cat sat on a mat", names_filter=sae.cfg.metadata.hook_name)
    acts = cache[sae.cfg.metadata.hook_name]
    feats = loaded.encode(acts)
    assert feats.shape == (*acts.shape[:-1], 256)
    assert torch.allclose(feats, sae.encode(acts))


def test_sae_of_wrong_width_is_rejected(tmp_path, tiny_gpt2, tokenizer, no_network) -> None:
    model = load_model("gpt2-small", hf_model=tiny_gpt2, tokenizer=tokenizer, device="cpu")
    narrow = _small_sae(32, "blocks.0.hook_resid_post")
    with pytest.raises(ValueError, match=r"d_in=32.*d_model=64"):
        check_sae_matches(model, narrow)
    narrow.save_model(tmp_path / "narrow")
    with pytest.raises(ValueError, match="SAE/model mismatch"):
        load_sae("gpt2-small", 0, path=tmp_path / "narrow", model=model)
    # a known paper model: checked against its d_model without loading it
    wide = _small_sae(64, "blocks.0.hook_resid_post")
    wide.save_model(tmp_path / "wide")
    with pytest.raises(ValueError, match=r"d_in=64.*d_model=2304"):
        load_sae("gemma-2-2b", 0, path=tmp_path / "wide")


def test_sae_at_missing_hook_is_rejected(no_network, tiny_gpt2, tokenizer) -> None:
    model = load_model("gpt2-small", hf_model=tiny_gpt2, tokenizer=tokenizer, device="cpu")
    with pytest.raises(ValueError, match="blocks.7.hook_resid_post"):
        check_sae_matches(model, _small_sae(64, "blocks.7.hook_resid_post"))


def test_missing_sae_folder(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="No saved SAE"):
        load_sae("organism", 0, path=tmp_path / "nothing-here")


# --------------------------------------------------------------------------------------------
# the organism (the real ci build)
# --------------------------------------------------------------------------------------------
def test_load_world_is_the_seeded_world() -> None:
    from llmfeatures.organism.world import build_world

    world = loaders.load_world(scale="ci")
    assert world.config == build_world(scale="ci").config
    assert world.texts("train") == build_world(scale="ci").texts("train")


@pytest.mark.slow
def test_organism_model_and_sae(no_network) -> None:
    model = load_model("organism", scale="ci", device="cpu")
    from transformer_lens import HookedTransformer

    assert isinstance(model, HookedTransformer) and model.tokenizer is not None
    last = model.cfg.n_layers - 1
    sae = load_sae("organism", last, scale="ci", device="cpu", model=model)
    check_sae_matches(model, sae)
    hook = sae.cfg.metadata.hook_name
    assert hook == loaders.resid_hook(last) == f"blocks.{last}.hook_resid_post"
    _, cache = model.run_with_cache("The capital of", names_filter=hook)
    assert sae.encode(cache[hook]).shape[-1] == sae.cfg.d_sae
