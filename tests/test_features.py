"""The feature engine against brute force, on a planted model and on the ci organism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmfeatures.features import (
    FeatureStats,
    StatsConfig,
    collect_feature_stats,
    feature_dashboard,
    feature_stats,
    harvest_texts,
    load_texts,
    organism_corpus,
    reference_cooccurrence,
    tokenize_documents,
)
from llmfeatures.features import engine as engine_mod
from llmfeatures.features.accumulators import GroupSample, GroupTopK
from llmfeatures.features.corpus import TokenCorpus
from tests.conftest import gpt2_stand_in

# ------------------------------------------------------------------------------ planted model
WORDS = ["alpha", "beta", "gamma", "delta", "red", "green", "blue", "cat", "dog", "runs",
         "sits", "the", "a", "and"]
DETECTED = ["alpha", "red", "cat", "runs"]  # latent j detects DETECTED[j]



@pytest.fixture(scope="module")
def planted():
    """A model whose residual stream is exactly a one-hot token code plus a position ramp.

    Attention and MLP outputs are zeroed, so ``blocks.L.hook_resid_post`` = ``W_E[tok] + W_pos[p]``
    for every L.  The embeddings are orthonormal; ``W_pos[p] = p/100 * sum of the detected words'
    embeddings``.  SAE latent j computes ``relu(<x, e_j> - 0.5)``: ``0.5 + p/100`` on DETECTED[j]
    at position p (BOS is position 0) and 0 elsewhere.
    """
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from llmfeatures.organism.tokenizer import SPECIAL_TOKENS, wrap

    vocab = {w: i for i, w in enumerate([*SPECIAL_TOKENS, *WORDS])}
    raw = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS[0]))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    raw.decoder = decoders.WordPiece(prefix="##")
    tok = wrap(raw)
    d = 32
    cfg = HookedTransformerConfig(n_layers=2, d_model=d, n_heads=2, d_head=16, d_mlp=24, n_ctx=24,
                                  d_vocab=len(vocab), act_fn="gelu", normalization_type="LN",
                                  model_name="planted-test", seed=0)
    model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(0)))
    emb = q[: len(vocab)]
    det = torch.stack([emb[vocab[w]] for w in DETECTED])
    with torch.no_grad():
        model.embed.W_E.copy_(emb)
        ramp = det.sum(0)
        model.pos_embed.W_pos.copy_(torch.arange(cfg.n_ctx)[:, None] / 100.0 * ramp)
        for block in model.blocks:
            block.attn.W_O.zero_()
            block.attn.b_O.zero_()
            block.mlp.W_out.zero_()
            block.mlp.b_out.zero_()
    sae = StandardSAE(StandardSAEConfig(d_in=d, d_sae=len(DETECTED), apply_b_dec_to_input=False,
                                        metadata=SAEMetadata(hook_name="blocks.1.hook_resid_post")))
    with torch.no_grad():
        sae.W_enc.copy_(det.T)
        sae.b_enc.fill_(-0.5)
        sae.W_dec.copy_(det)
        sae.b_dec.zero_()
    rng = np.random.default_rng(0)
    texts, domains = [], []
    for i in range(40):
        domain = "A" if i % 2 == 0 else "B"
        pool = WORDS if domain == "A" else [w for w in WORDS if w != "alpha"]
        texts.append(" ".join(rng.choice(pool, size=rng.integers(6, 20))))
        domains.append(domain)
    kinds = {w: ("noun" if w in ("cat", "dog") else "other_word") for w in WORDS}
    corpus = tokenize_documents(tok, texts, doc_labels={"domain": domains},
                                word_labels={"pos": kinds, "word": {w: w for w in WORDS}})
    return model, sae, corpus


def _planted_value(corpus: TokenCorpus, word_id: int) -> np.ndarray:
    """The exact activation of the latent detecting ``word_id`` at every token."""
    pos = np.concatenate([np.arange(n) for n in corpus.lengths()]) + 1  # BOS at 0
    return np.where(corpus.tokens == word_id, 0.5 + pos / 100.0, 0.0)


def test_planted_latents_match_their_formula(planted) -> None:
    model, sae, corpus = planted
    stats = collect_feature_stats(model, corpus, {1: sae}, config=StatsConfig(block_size=4, threshold=0.3),
                                  progress=False)
    s = stats.sae[1]
    vocab = model.tokenizer.get_vocab()
    for j, word in enumerate(DETECTED):
        truth = _planted_value(corpus, vocab[word])
        assert s.fire_count[j] == int((truth > 0).sum())
        assert s.act_sum[j] == pytest.approx(truth.sum(), rel=1e-5)
        order = np.lexsort((np.arange(len(truth)), -truth))[: stats.config.top_k]
        order = order[truth[order] > 0]
        np.testing.assert_array_equal(s.top_ids[j][: len(order)], order)
        np.testing.assert_allclose(s.top_values[j][: len(order)], truth[order], rtol=1e-5)
        assert (s.top_ids[j][len(order):] == -1).all()


def test_planted_domain_feature_has_purity_one(planted) -> None:
    model, sae, corpus = planted
    stats = collect_feature_stats(model, corpus, {1: sae}, config=StatsConfig(block_size=4, threshold=0.3),
                                  progress=False)
    dom = stats.sae[1].purity("domain")
    names = stats.label_names["domain"]
    assert names[dom.label[0]] == "A" and dom.purity[0] == 1.0  # "alpha" only occurs in A
    assert dom.purity[1] < 1.0  # "red" occurs in both domains
    pos = stats.sae[1].purity("pos")
    assert stats.label_names["pos"][pos.label[2]] == "noun" and pos.purity[2] == 1.0  # "cat"
    word = stats.sae[1].purity("word")
    assert stats.label_names["word"][word.label[3]] == "runs" and word.purity[3] == 1.0


def test_planted_dashboard_shows_the_detected_word(planted) -> None:
    model, sae, corpus = planted
    stats = collect_feature_stats(model, corpus, {1: sae}, config=StatsConfig(block_size=4, threshold=0.3),
                                  progress=False)
    html = feature_dashboard(stats, "sae", 1, 0, model=model, sae=sae)._repr_html_()
    assert "llmf-dashboard" in html and "Layer 1 SAE latent 0" in html
    assert "100% <b>A</b>" in html  # domain purity
    maxed = html.split("llmf-tok llmf-max")[1:]
    assert len(maxed) >= 3 and all(m.split(">", 1)[1].startswith("alpha") for m in maxed)
    assert "promotes" in html and "<svg" in html
    # without the model, examples still mark the top token
    plain = feature_dashboard(stats, "sae", 1, 0)._repr_html_()
    assert "llmf-max" in plain and "promotes" not in plain
    with pytest.raises(ValueError, match="out of range"):
        feature_dashboard(stats, "sae", 1, 99)


# ------------------------------------------------------------------------------ bad input
def test_bad_inputs_get_clear_errors(planted) -> None:
    from sae_lens import StandardSAE, StandardSAEConfig

    model, sae, corpus = planted
    with pytest.raises(ValueError, match="layer 5 is out of range: valid layers are 0..1"):
        collect_feature_stats(model, corpus, layers=[5], progress=False)
    narrow = StandardSAE(StandardSAEConfig(d_in=16, d_sae=8))
    with pytest.raises(ValueError, match="d_in=16.*d_model=32"):
        collect_feature_stats(model, corpus, {1: narrow}, progress=False)
    with pytest.raises(ValueError, match="trained on 'blocks.1.hook_resid_post'"):
        collect_feature_stats(model, corpus, {0: sae}, progress=False)
    with pytest.raises(ValueError, match="no text"):
        tokenize_documents(model.tokenizer, [])
    empty = TokenCorpus(tokens=np.zeros(0, np.int64), offsets=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="no tokens"):
        collect_feature_stats(model, empty, {1: sae}, progress=False)
    with pytest.raises(ValueError, match="block_size=200 is larger than the longest document"):
        collect_feature_stats(model, corpus, {1: sae}, config=StatsConfig(block_size=200),
                              progress=False)
    with pytest.warns(UserWarning, match="lower StatsConfig.threshold"):
        collect_feature_stats(model, corpus, {1: sae},
                              config=StatsConfig(block_size=4, threshold=50.0), progress=False)
    with pytest.raises(ValueError, match="label kinds \\['entity_type'\\]"):
        collect_feature_stats(model, corpus, {1: sae},
                              config=StatsConfig(block_size=4, label_kinds=("entity_type",)),
                              progress=False)
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        StatsConfig(block_size=0)


# ------------------------------------------------------------------------------ accumulators
def test_group_topk_matches_a_full_sort_whatever_the_batches() -> None:
    g = torch.Generator().manual_seed(0)
    n, G, r = 5000, 7, 5
    groups = torch.randint(0, G, (n,), generator=g)
    values = torch.randint(0, 20, (n,), generator=g).float()  # many ties
    ids = torch.randperm(n, generator=g)
    for cut in (n, 97, 1):
        acc = GroupTopK(G, r)
        for s in range(0, n, cut):
            acc.update(groups[s : s + cut], values[s : s + cut], ids[s : s + cut])
        for k in range(G):
            m = groups == k
            order = np.lexsort((ids[m].numpy(), -values[m].numpy()))[:r]
            np.testing.assert_array_equal(acc.ids[k].numpy(), ids[m].numpy()[order])


def test_group_sample_is_uniform_and_batch_independent() -> None:
    n, G = 60_000, 3
    groups = torch.arange(n) % G
    ids = torch.arange(n)
    one = GroupSample(G, 2)
    one.update(groups, ids, groups, ids.float())
    many = GroupSample(G, 2)
    for s in range(0, n, 777):
        many.update(groups[s : s + 777], ids[s : s + 777], groups[s : s + 777], ids[s : s + 777].float())
    assert torch.equal(one.ids, many.ids)
    assert ((one.ids % G) == torch.arange(G)[:, None]).all()  # each sample from its own group
    # uniform: over many groups the picked positions spread over the whole range
    big = GroupSample(2000, 1)
    gg = torch.arange(200_000) % 2000
    big.update(gg, torch.arange(200_000), gg, torch.zeros(200_000))
    rank = (big.ids[:, 0] // 2000).float() / 100  # position of the pick within its group
    assert abs(rank.mean().item() - 0.5) < 0.03 and rank.std().item() == pytest.approx(0.29, abs=0.03)


# ------------------------------------------------------------------------------ ci organism
@pytest.fixture(scope="module")
def organism():
    from llmfeatures.loaders import load_model, load_sae, load_world

    model = load_model("organism", scale="ci")
    saes = {L: load_sae("organism", L, scale="ci", model=model) for L in range(model.cfg.n_layers)}
    corpus = organism_corpus(load_world("ci"), model.tokenizer, ("val",), max_docs=60)
    return model, saes, corpus


@torch.no_grad()
def _brute_force(model, saes, corpus, chunk_len):
    """Every token's SAE activations and residual, one chunk at a time (no engine code)."""
    acts = {L: [] for L in saes}
    resid = {L: [] for L in saes}
    for d in range(corpus.n_docs):
        doc = corpus.doc(d)
        per_doc = {L: [] for L in saes}
        for s in range(0, len(doc), chunk_len):
            ids = torch.tensor([[model.tokenizer.bos_token_id, *doc[s : s + chunk_len].tolist()]])
            _, cache = model.run_with_cache(ids)
            for L, sae in saes.items():
                x = cache[f"blocks.{L}.hook_resid_post"][0, 1:]
                per_doc[L].append(sae.encode(x).numpy())
                resid[L].append(x.numpy())
        for L in saes:
            acts[L].append(np.concatenate(per_doc[L]))
    return acts, {L: np.concatenate(v) for L, v in resid.items()}


@pytest.mark.slow
def test_engine_equals_brute_force_on_the_organism(organism) -> None:
    model, saes, corpus = organism
    cfg = StatsConfig(threshold=0.5)
    stats = collect_feature_stats(model, corpus, saes, config=cfg, progress=False)
    acts, resid = _brute_force(model, saes, corpus, stats.meta["chunk_len"])
    lo, hi = cfg.hist_range
    step = (np.log(hi) - np.log(lo)) / cfg.n_bins
    for L, sae in saes.items():
        a = np.concatenate(acts[L])  # [n_tokens, U] in global token order
        s = stats.sae[L]
        assert s.n_tokens == corpus.n_tokens == len(a)
        np.testing.assert_array_equal(s.fire_count, (a > 0).sum(0))
        np.testing.assert_allclose(s.act_sum, a.sum(0), rtol=1e-4, atol=1e-3)
        # histogram: slot of every positive activation, by the documented formula
        t, u = np.nonzero(a > 0)
        slot = np.clip(np.floor((np.log(a[t, u]) - np.log(lo)) / step).astype(int) + 1, 0, cfg.n_bins + 1)
        hist = np.zeros_like(s.hist)
        np.add.at(hist, (u, slot), 1)
        assert np.abs(hist - s.hist).sum() <= 2  # float32 log vs float64 at a bin edge, at most
        # top-k: a full sort by (activation desc, token index asc)
        for unit in range(0, sae.cfg.d_sae, 7):
            order = np.lexsort((np.arange(len(a)), -a[:, unit]))[: cfg.top_k]
            order = order[a[order, unit] > 0]
            got = s.top_ids[unit][: len(order)]
            # batched and per-document forwards differ by float rounding, so two activations
            # equal to ~1e-6 may swap; any other difference in the order is an error
            for i in np.flatnonzero(got != order):
                np.testing.assert_allclose(a[got[i], unit], a[order[i], unit], rtol=1e-5,
                                           err_msg=f"unit {unit}: top-{i} differs beyond a tie")
            np.testing.assert_allclose(s.top_values[unit][: len(order)], a[order, unit], rtol=1e-4)
        # label counts by brute force
        for kind in corpus.label_kinds:
            codes = corpus.token_label_codes(kind)
            ok = codes[t] >= 0
            counts = np.zeros_like(s.label_counts[kind])
            np.add.at(counts, (u[ok], codes[t][ok]), 1)
            np.testing.assert_array_equal(s.label_counts[kind], counts)
        # co-occurrence: the reference loop on the same activations
        c = stats.cooccurrence[L]
        ref_counts, ref_on, ref_blocks = reference_cooccurrence(acts[L], stats.meta["block_size"], 0.5)
        np.testing.assert_array_equal(c.counts, ref_counts)
        np.testing.assert_array_equal(c.n_on, ref_on)
        assert c.n_blocks == ref_blocks and c.n_on.sum() > 0
        # residual moments
        np.testing.assert_allclose(stats.resid[L].mean, resid[L].mean(0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(stats.resid[L].cov, np.cov(resid[L], rowvar=False), rtol=1e-3,
                                   atol=1e-3)


@pytest.mark.slow
def test_results_do_not_depend_on_the_batch_size(organism) -> None:
    model, saes, corpus = organism
    small = collect_feature_stats(model, corpus, saes, config=StatsConfig(batch_tokens=300,
                                  threshold=0.5, keep_blocks=True), progress=False)
    large = collect_feature_stats(model, corpus, saes, config=StatsConfig(batch_tokens=20_000,
                                  threshold=0.5, keep_blocks=True), progress=False)
    assert small.meta["n_batches"] > 5 * large.meta["n_batches"]
    for L in saes:
        a, b = small.sae[L], large.sae[L]
        for name in ("fire_count", "hist", "top_ids", "band_ids"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        np.testing.assert_allclose(a.act_sum, b.act_sum, rtol=1e-5)
        np.testing.assert_array_equal(small.cooccurrence[L].counts, large.cooccurrence[L].counts)
        # the kept blocks are the same sets (their order follows the batches)
        ma, mb = small.cooccurrence[L].block_matrix(), large.cooccurrence[L].block_matrix()
        assert sorted(map(bytes, np.packbits(ma, axis=1))) == sorted(map(bytes, np.packbits(mb, axis=1)))
        np.testing.assert_array_equal(ma.sum(0), small.cooccurrence[L].n_on)


@pytest.mark.slow
def test_stats_are_cached_and_round_trip(organism, monkeypatch, tmp_path) -> None:
    model, saes, corpus = organism
    monkeypatch.setenv("LLMFEATURES_HOME", str(tmp_path))
    calls = []
    real = engine_mod.collect_feature_stats

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    import llmfeatures.features as features_pkg

    monkeypatch.setattr(features_pkg, "collect_feature_stats", counting)
    sub = corpus.subset(np.arange(20))
    first = feature_stats(model, sub, saes, config=StatsConfig(keep_blocks=True), progress=False)
    second = feature_stats(model, sub, saes, config=StatsConfig(keep_blocks=True), progress=False)
    assert len(calls) == 1  # the second call loaded the file
    for L in saes:
        for name in ("fire_count", "hist", "top_ids", "top_values", "band_ids"):
            np.testing.assert_array_equal(getattr(first.sae[L], name), getattr(second.sae[L], name))
        np.testing.assert_array_equal(first.cooccurrence[L].block_matrix(),
                                      second.cooccurrence[L].block_matrix())
    assert second.label_names == sub.label_names
    ex = second.top_examples("sae", 0, int(np.argmax(second.sae[0].fire_count)))
    assert len(ex) == second.config.top_k and ex.activation.is_monotonic_decreasing
    # another corpus is another cache entry
    feature_stats(model, corpus.subset(np.arange(21)), saes, progress=False)
    assert len(calls) == 2


def test_cooccurrence_is_exact_across_flushes(planted, monkeypatch) -> None:
    """Counts move from the float32 device matrix to the int64 total without loss."""
    model, sae, corpus = planted
    cfg = StatsConfig(block_size=3, threshold=0.1, batch_tokens=64)
    ref = collect_feature_stats(model, corpus, {1: sae}, config=cfg, progress=False)
    monkeypatch.setattr(engine_mod._CoocAccumulator, "FLUSH_AT", 7)
    flushed = collect_feature_stats(model, corpus, {1: sae}, config=cfg, progress=False)
    np.testing.assert_array_equal(ref.cooccurrence[1].counts, flushed.cooccurrence[1].counts)
    vocab = model.tokenizer.get_vocab()
    acts = [np.stack([_planted_value(corpus.subset([d]), vocab[w]) for w in DETECTED], 1)
            for d in range(corpus.n_docs)]
    counts, n_on, n_blocks = reference_cooccurrence(acts, 3, 0.1)
    np.testing.assert_array_equal(flushed.cooccurrence[1].counts, counts)
    assert flushed.cooccurrence[1].n_blocks == n_blocks and counts.sum() > 0


def test_saved_file_round_trips(planted, tmp_path) -> None:
    model, sae, corpus = planted
    stats = collect_feature_stats(model, corpus, {1: sae}, layers=[0, 1],
                                  config=StatsConfig(block_size=4, neurons=True), progress=False)
    stats.save(tmp_path / "s.npz")
    back = FeatureStats.load(tmp_path / "s.npz")
    assert back.config == stats.config and sorted(back.neurons) == [0, 1]
    np.testing.assert_array_equal(back.neurons[0].hist, stats.neurons[0].hist)
    np.testing.assert_array_equal(back.cooccurrence[1].counts, stats.cooccurrence[1].counts)
    assert back.corpus.fingerprint() == corpus.fingerprint()
    # neurons: the mean over all tokens includes their negative values
    assert (back.neurons[0].act_sum < 0).any()


# ------------------------------------------------------------------------------ real models
def test_harvest_on_a_gpt2_stand_in(no_network, tmp_path, monkeypatch) -> None:
    """The Colab path (GPT-2 small + its SAE on texts) on a locally built stand-in."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from llmfeatures.organism.tokenizer import train_tokenizer

    monkeypatch.setenv("LLMFEATURES_HOME", str(tmp_path))
    texts = [f"the {a} sat on the {b} while the {c} ran" for a in ("cat", "dog", "fox")
             for b in ("mat", "log", "rug") for c in ("boy", "girl")] * 3
    tok = train_tokenizer(texts, vocab_size=300)
    model = gpt2_stand_in(tok, n_head=2, n_positions=64)
    sae = StandardSAE(StandardSAEConfig(d_in=32, d_sae=64,
                                        metadata=SAEMetadata(hook_name="blocks.1.hook_resid_post")))
    stats = harvest_texts(model, texts, saes={1: sae}, config=StatsConfig(block_size=4, threshold=0.3),
                          max_tokens_per_doc=8, progress=False)
    assert stats.sae[1].n_tokens == stats.corpus.n_tokens == 8 * len(texts)
    assert stats.cooccurrence[1].n_blocks == 2 * len(texts)
    assert stats.meta["block_size"] == 4 and not stats.sae[1].label_counts


def test_load_texts_offline_says_what_to_do(no_network) -> None:
    from llmfeatures.loaders import ModelUnavailableError

    with pytest.raises(ModelUnavailableError, match="dataset"):
        load_texts("monology/pile-uncopyrighted", n_docs=3)
