"""The crystal measurements on planted vectors whose structure is known, and on the ci organism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmfeatures.crystals import (
    first_component,
    length_distractor,
    mean_pairwise_cosine,
    pair_representations,
    parallelism,
)


def _planted(shared: bool, n_rel: int = 4, n_pairs: int = 12, d: int = 64, seed: int = 0):
    """Pairs whose two words share an attribute vector (``shared``) or not, plus a class offset
    per relation and noise."""
    rng = np.random.default_rng(seed)
    xs, ys, rels = [], [], []
    for r in range(n_rel):
        offset = rng.normal(size=d)
        attrs = rng.normal(size=(4, d)) * 2.0
        for i in range(n_pairs):
            a = attrs[i % 4]
            x = a + rng.normal(scale=0.5, size=d)
            y = x * 0 + (a if shared else attrs[rng.integers(4)]) + offset \
                + rng.normal(scale=0.5, size=d)
            xs.append(x)
            ys.append(y)
            rels.append(f"r{r}")
    return np.array(xs), np.array(ys), np.array(rels)


def test_mean_pairwise_cosine_exact() -> None:
    v = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # cosines: 0, 1/sqrt2, 1/sqrt2 -> mean over the 3 pairs
    assert mean_pairwise_cosine(v) == pytest.approx(2 / np.sqrt(2) / 3)
    with pytest.raises(ValueError, match="at least 2"):
        mean_pairwise_cosine(v[:1])


def test_parallelism_sees_a_shared_attribute_and_not_its_absence() -> None:
    x, y, rel = _planted(shared=True)
    t = parallelism(x, y, rel, n_shuffles=30)
    assert (t.gap > 0.3).all(), t
    assert (t.within > t.across).all()
    x, y, rel = _planted(shared=False)
    t = parallelism(x, y, rel, n_shuffles=30)
    assert (t.gap.abs() < 0.1).all(), t
    with pytest.raises(ValueError, match=">= 3"):
        parallelism(x[:2], y[:2], rel[:2])


def test_length_distractor_recovers_a_planted_direction_against_its_null() -> None:
    rng = np.random.default_rng(1)
    n, d = 200, 32
    rel = np.repeat(["a", "b", "c", "d"], n // 4)
    length = rng.integers(-6, 7, size=n).astype(float)
    direction = rng.normal(size=d)
    offsets = {r: rng.normal(size=d) * 10 for r in "abcd"}
    diffs = np.array([offsets[r] for r in rel]) + np.outer(length, direction) \
        + rng.normal(scale=0.5, size=(n, d))
    test = length_distractor(diffs, length, rel, n_permutations=200)
    assert abs(test.r) > 0.9 and test.null_q95 < 0.25 and test.p < 0.01
    # without removing the relation means, PC1 is the split between relations, not length
    scores, _ = first_component(diffs, None, standardize=False)
    assert abs(np.corrcoef(scores, length)[0, 1]) < abs(test.r)
    # a target unrelated to the differences stays inside its null
    noise = length_distractor(diffs, rng.permutation(length), rel, n_permutations=200)
    assert abs(noise.r) < noise.null_q95 + 0.1
    with pytest.raises(ValueError, match="constant"):
        length_distractor(diffs, np.ones(n), rel)


def test_structure_figures_on_the_ci_organism() -> None:
    """The structure tables are well formed on a real model; words alone are fed one by one or
    batched with the same result."""
    from llmfeatures.crystals import word_representations
    from llmfeatures.loaders import load_model, load_world
    from llmfeatures.organism.structure import length_table, parallelism_table

    model = load_model("organism", scale="ci")
    world = load_world(scale="ci")
    par = parallelism_table(model, world, 1, n_shuffles=5)
    assert list(par.relation) == list(world.relations)
    assert par[["within", "shuffled", "across"]].abs().le(1).all().all()
    length = length_table(model, world, [-1, 0], n_permutations=20)
    assert list(length.index) == [-1, 0] and length.null_q95.between(0, 1).all()
    ctx = parallelism_table(model, world, 1, n_shuffles=5, kind="context", scale="ci")
    assert list(ctx.relation) == list(world.relations)
    assert not ctx.equals(par)  # another representation, other figures
    with pytest.raises(ValueError, match="kind must be one of"):
        parallelism_table(model, world, 1, kind="sentence")
    words = ["Paris", "Copenhagen", "cat", "butterflies"]
    batched = word_representations(model, words, [0], batch_size=4)[0]
    single = np.concatenate([word_representations(model, [w], [0])[0] for w in words])
    np.testing.assert_allclose(batched, single, atol=1e-4)


# --- chapter 3: LDA on held-out pairs, shapes, the crystal search, exercises, the Colab path ---

def _planted_distractor(n_rel: int = 8, m: int = 16, d: int = 64, seed: int = 0):
    """Differences = a relation offset + a strong length direction (the distractor) + noise."""
    rng = np.random.default_rng(seed)
    rel = np.repeat([f"r{i}" for i in range(n_rel)], m)
    length = rng.integers(-6, 7, size=len(rel)).astype(float)
    offsets = rng.normal(size=(n_rel, d)) * 0.6
    diffs = offsets[np.repeat(np.arange(n_rel), m)] + np.outer(length, rng.normal(size=d)) * 0.8 \
        + rng.normal(size=(len(rel), d))
    return diffs, rel, length


def test_lda_on_held_out_pairs_recovers_a_planted_structure_behind_a_distractor() -> None:
    from llmfeatures.crystals import lda_sweep

    diffs, rel, length = _planted_distractor()
    sw = lda_sweep(diffs, rel, n_folds=4)
    t = sw.table
    assert sw.raw < 0.0 and sw.gain > 0.2, (sw.raw, t)          # hidden before, revealed after
    assert (t.heldout.loc[sw.best] - t.null.loc[sw.best]) > 0.2  # far above permuted labels
    assert t.null.max() < 0.05
    # the trap: fit and scored on the same pairs, permuted labels score far above their held-out
    assert (t.in_sample_null - t.null).max() > 0.1
    # PC1 of the differences (relation means removed) is the planted distractor
    test = length_distractor(diffs, length, rel, n_permutations=100)
    assert abs(test.r) > 0.9 and abs(test.r) > test.null_q95
    # no structure: labels unrelated to the differences stay at the null
    shuffled = lda_sweep(diffs, np.random.default_rng(1).permutation(rel), components=[3],
                         n_folds=4)
    assert shuffled.table.heldout.iloc[0] < 0.05
    # every pair is held out once per repetition; a shrinkage was chosen for every fold
    assert len(sw.shrinkages) == 4 and all(0 < v < 1 for v in sw.shrinkages)
    with pytest.raises(ValueError, match="smallest relation"):
        lda_sweep(diffs[:9], np.array([*["a"] * 4, *["b"] * 4, "c"]))


def test_shrinkage_is_chosen_on_training_pairs_and_follows_the_noise() -> None:
    """Few noisy pairs per relation in many dimensions need more shrinkage than many clean
    pairs in few dimensions; the choice sees only what it is given."""
    from llmfeatures.crystals import SHRINKAGE_GRID, choose_shrinkage

    rng = np.random.default_rng(0)
    rel = np.repeat(["a", "b", "c"], 12)
    centres = rng.normal(size=(3, 60)) * 0.4
    wide = centres[np.repeat(np.arange(3), 12)] + rng.normal(size=(36, 60))
    rel_many = np.repeat(["a", "b", "c"], 200)
    narrow = rng.normal(size=(3, 4))[np.repeat(np.arange(3), 200)] * 3 \
        + rng.normal(size=(600, 4)) @ np.diag([3.0, 1.0, 0.3, 0.1])
    s_wide, s_narrow = choose_shrinkage(wide, rel), choose_shrinkage(narrow, rel_many)
    assert s_wide in SHRINKAGE_GRID and s_narrow in SHRINKAGE_GRID
    assert s_wide > s_narrow, (s_wide, s_narrow)
    with pytest.raises(ValueError, match=">= 2 training pairs"):
        choose_shrinkage(wide[:4], np.array(["a", "a", "b", "c"]))


def test_quadrilaterals_and_the_trapezoid_case() -> None:
    from llmfeatures.crystals import quadrilateral, shape_table

    o, e1, e2 = np.zeros(2), np.array([1.0, 0]), np.array([0, 1.0])
    assert quadrilateral(o, e1, e2, e2 + e1).kind == "parallelogram"
    assert quadrilateral(o, e1, e2, e2 + 3 * e1).kind == "trapezoid"
    assert quadrilateral(o, e1, e2, e2 - e1).kind == "neither"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 16))
    rel = np.repeat(["par", "trap", "none"], 10)
    u = rng.normal(size=16)
    scale = np.where(rel == "trap", rng.uniform(0.3, 2.5, 30), 1.0)
    y = x + scale[:, None] * u + 0.05 * rng.normal(size=x.shape)
    y[rel == "none"] = rng.normal(size=(10, 16))
    t = shape_table(x, y, rel, n_shuffles=5).set_index("relation")
    assert t.loc["par", "parallelograms"] > 0.9 and t.loc["trap", "trapezoids"] > 0.3
    assert t.loc["none", "parallelograms"] + t.loc["none", "trapezoids"] < 0.2
    assert t.loc["par", "shuffled_parallelograms"] < t.loc["par", "parallelograms"] - 0.5


def _planted_crystal_words(n_rel: int = 6, m: int = 6, d: int = 48, n_extra: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    r = np.repeat(np.arange(n_rel), m)
    x = rng.normal(size=(len(r), d))
    y = x + rng.normal(size=(n_rel, d))[r] + rng.normal(scale=0.05, size=x.shape)
    words = [f"x{i}" for i in range(len(r))] + [f"y{i}" for i in range(len(r))] + \
        [f"z{i}" for i in range(n_extra)]
    vectors = np.concatenate([x, y, rng.normal(size=(n_extra, d))])
    pairs = pd.DataFrame({"relation": [f"r{i}" for i in r], "input": words[: len(r)],
                          "output": words[len(r): 2 * len(r)]})
    return vectors, words, pairs


def test_crystal_search_finds_planted_parallelograms_and_not_in_a_shuffled_decoder() -> None:
    from llmfeatures.crystals import planted_quadrilaterals, search_against_control

    vectors, words, pairs = _planted_crystal_words()
    real, table = search_against_control(vectors, words, pairs, ks=(10, 50), n_controls=2)
    n_planted = len(planted_quadrilaterals(pairs, words))
    assert table.attrs["n_planted"] == n_planted == 6 * 15
    assert table.loc["top 50", "precision"] > 0.9 and table.loc["all", "recall"] > 0.8
    assert table.loc["top 50", "control_precision"] < 0.1
    best = real.candidates.iloc[0]
    assert frozenset(best[["a", "b", "c", "d"]]) in planted_quadrilaterals(pairs, words)
    assert best.cosine > 0.8 and best.length_ratio > 0.8
    # without relation structure (outputs unrelated to inputs) nothing planted is found
    rng = np.random.default_rng(3)
    noise, _, _ = _planted_crystal_words()
    noise[36:72] = rng.normal(size=(36, noise.shape[1]))
    _, table = search_against_control(noise, words, pairs, ks=(10,), n_controls=1)
    assert not table.loc["all", "correct"] > 2
    with pytest.raises(ValueError, match="one word per row"):
        search_against_control(vectors, words[:-1], pairs)


def test_local_search_starts_from_mutual_neighbours() -> None:
    """Pairs whose words sit close together, with short relation offsets: the mutual nearest
    neighbours are the planted pairs, and the local search ranks planted crystals first."""
    from llmfeatures.crystals import local_edges, search_against_control

    rng = np.random.default_rng(0)
    n_rel, m, d = 4, 6, 32
    r = np.repeat(np.arange(n_rel), m)
    x = rng.normal(size=(len(r), d)) * 3
    y = x + (rng.normal(size=(n_rel, d)) * 0.4)[r] + rng.normal(scale=0.05, size=x.shape)
    vectors = np.concatenate([x, y])
    words = [f"x{i}" for i in range(len(r))] + [f"y{i}" for i in range(len(r))]
    pairs = pd.DataFrame({"relation": [f"r{i}" for i in r], "input": words[: len(r)],
                          "output": words[len(r):]})
    edges = {tuple(e) for e in local_edges(vectors, 1).tolist()}
    assert edges == {(i, i + len(r)) for i in range(len(r))}
    _, table = search_against_control(vectors, words, pairs, ks=(10,), n_controls=2, local=1,
                                      min_cosine=0.2)
    assert table.loc["top 10", "precision"] > 0.8 > 0.1 > table.loc["top 10", "control_precision"]
    with pytest.raises(ValueError, match="k must be"):
        local_edges(vectors, len(vectors))


def test_decoded_words_are_the_sae_reconstruction_and_quad_scores_separate_planted() -> None:
    import torch
    from sae_lens import StandardSAE, StandardSAEConfig

    from llmfeatures.crystals import decoded_words, quad_scores

    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=16, d_sae=48))
    with torch.no_grad():
        sae.b_dec.normal_()
        codes = sae.encode(torch.randn(10, 16))
        want = (sae.decode(codes) - sae.b_dec).numpy()
    got = decoded_words(codes.numpy(), sae.W_dec.detach().numpy())
    np.testing.assert_allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError, match="d_sae"):
        decoded_words(codes.numpy(), sae.W_dec.detach().numpy().T)
    # planted crystals score far above random quadrilaterals; without structure they do not
    vectors, words, pairs = _planted_crystal_words()
    qs = quad_scores(vectors, words, pairs, n_random=5000)
    assert (qs.kind == "planted").sum() == 6 * 15 and (qs.kind == "random").sum() == 5000
    med = qs.groupby("kind").score.median()
    assert med["planted"] > 0.8 and med["random"] < 0.1, med
    noise = vectors.copy()
    noise[36:72] = np.random.default_rng(3).normal(size=(36, vectors.shape[1]))
    med = quad_scores(noise, words, pairs, n_random=5000).groupby("kind").score.median()
    assert abs(med["planted"] - med["random"]) < 0.1, med


def test_exercise_checks_accept_the_solution_and_reject_wrong_answers() -> None:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    from llmfeatures.crystals import MIN_COSINE, MIN_RATIO, exercises, quadrilateral

    exercises.check_difference_cosine(lambda x, y: mean_pairwise_cosine(y - x))
    with pytest.raises(AssertionError):  # dot products, not cosines
        exercises.check_difference_cosine(
            lambda x, y: float(np.mean([(y - x)[i] @ (y - x)[j] for i in range(len(x))
                                        for j in range(i + 1, len(x))])))
    with pytest.raises(AssertionError):  # the diagonal included
        exercises.check_difference_cosine(
            lambda x, y: float(np.mean((lambda u: u @ u.T)((y - x) / np.linalg.norm(y - x, axis=1,
                                                                                      keepdims=True)))))

    def heldout(diffs, rel, train, test, k, score_rows=None):
        s = StandardScaler().fit(diffs[train])
        lda = LinearDiscriminantAnalysis(n_components=k, solver="eigen", shrinkage="auto")
        lda.fit(s.transform(diffs[train]), rel[train])
        rows = test if score_rows is None else score_rows(train, test)
        return silhouette_score(lda.transform(s.transform(diffs[rows])), rel[rows])

    exercises.check_heldout_lda(heldout)
    with pytest.raises(AssertionError, match="training pairs"):
        exercises.check_heldout_lda(lambda *a: heldout(*a, score_rows=lambda tr, te: tr))
    exercises.check_quadrilateral(lambda a, b, c, d: quadrilateral(a, b, c, d).kind)
    with pytest.raises(AssertionError):  # |cosine|: anti-parallel counted as parallel
        exercises.check_quadrilateral(
            lambda a, b, c, d: quadrilateral(a, b, d, c).kind
            if quadrilateral(a, b, c, d).cosine < 0 else quadrilateral(a, b, c, d).kind)
    with pytest.raises(AssertionError):  # lengths ignored
        exercises.check_quadrilateral(
            lambda a, b, c, d: "neither" if quadrilateral(a, b, c, d).cosine < MIN_COSINE
            else "parallelogram")
    assert 0 < MIN_RATIO < 1


def test_gemma_path_offline_with_stand_ins(no_network) -> None:
    import json

    import torch
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata
    from transformers import GPT2Config, GPT2LMHeadModel

    from llmfeatures.crystals import crystal_config
    from llmfeatures.crystals.gemma import (
        FV_RELATIONS,
        gemma_crystals,
        load_function_vector_pairs,
        t4_budget,
    )
    from llmfeatures.loaders import ModelUnavailableError
    from llmfeatures.organism.tokenizer import train_tokenizer

    with pytest.raises(ModelUnavailableError, match="internet"):
        load_function_vector_pairs(["country-capital"])
    torch.manual_seed(0)
    fake = {name: [{"input": f"{name[:3]}{i}", "output": f"{name[-3:]}{'x' * (i % 4)}{i}"}
                   for i in range(12)] for name in FV_RELATIONS[:4]}
    pairs = load_function_vector_pairs(FV_RELATIONS[:4], max_pairs=10,
                                       fetch=lambda url: json.dumps(fake[url.split("/")[-1][:-5]]))
    assert len(pairs) == 40 and set(pairs.relation) == set(FV_RELATIONS[:4])
    with pytest.raises(ValueError, match="unknown relation"):
        load_function_vector_pairs(["country-planet"], fetch=lambda url: b"[]")
    words = sorted(set(pairs.input) | set(pairs.output))
    tok = train_tokenizer([" ".join(words)] * 5, vocab_size=300)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=len(tok),
                                    n_positions=32)).eval()
    sae = StandardSAE(StandardSAEConfig(d_in=32, d_sae=64,
                                        metadata=SAEMetadata(hook_name="blocks.1.hook_resid_post")))
    cfg = crystal_config("ci", n_repeats=1, n_permutations=20, n_controls=1)
    out = gemma_crystals(pairs, hf_model=hf, tokenizer=tok, sae=sae, layers=(0, 1), sae_state=2,
                         config=cfg)
    assert list(out["distractor"].hidden_state) == [0, 1] and set(out["lda"]) == {0, 1}
    assert len(out["features"]) > 4 and set(out["search_table"]) == {"single", "decoded"}
    assert all("precision" in t for t in out["search_table"].values())
    budget = t4_budget(n_words=6000, n_features=500)
    assert budget["fits"] == 1.0 and budget["gpu_gb"] > 5
    assert t4_budget(n_words=6000, n_features=3000)["fits"] == 0.0



def test_context_representations_skip_contexts_that_state_the_relation() -> None:
    """On the ci organism: a context average is the mean of the windows fed one by one, and a
    document holding the partner word is never used."""
    import torch

    from llmfeatures.crystals import context_representations
    from llmfeatures.features.corpus import organism_corpus
    from llmfeatures.loaders import load_model, load_world, resid_hook

    model = load_model("organism", scale="ci")
    world = load_world(scale="ci")
    corpus = organism_corpus(world, model.tokenizer, splits=("val",))
    # a country that the validation documents mention both with and without its capital (sign
    # cards and shared attributes put many countries beside their capital in every document)
    for word, partner in world.relation_pairs().query("relation == 'country_capital'")[
            ["input", "output"]].itertuples(index=False):
        free = context_representations(model, corpus, [word], [0], n_contexts=1000, window=16)
        kept = context_representations(model, corpus, [word], [0], n_contexts=1000, window=16,
                                       exclude={word: {partner}})
        if 0 < kept.counts[0] < free.counts[0]:
            break
    assert 0 < kept.counts[0] < free.counts[0]
    # the same average by hand, over the documents without the partner
    ids = model.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    pid = model.tokenizer(" " + partner, add_special_tokens=False)["input_ids"]
    hs = []
    for d in range(corpus.n_docs):
        doc = corpus.doc(d).tolist()
        if any(doc[i: i + len(pid)] == pid for i in range(len(doc))):
            continue
        for e in range(len(ids) - 1, len(doc)):
            if doc[e - len(ids) + 1: e + 1] == ids and corpus.token_labels["word"][
                    corpus.offsets[d] + e] == corpus.label_names["word"].index(word):
                seq = [model.tokenizer.bos_token_id, *doc[max(0, e - 15): e + 1]]
                _, cache = model.run_with_cache(torch.tensor([seq]), names_filter=[resid_hook(0)])
                hs.append(cache[resid_hook(0)][0, -1].numpy())
    assert len(hs) == kept.counts[0]
    np.testing.assert_allclose(kept.reps[0][0], np.mean(hs, 0), atol=1e-4)
    # pair_representations with a corpus: the same average, partners taken from the pairs
    pairs = pd.DataFrame({"input": [word], "output": [partner]})
    x, _ = pair_representations(model, pairs, [0], corpus=corpus, n_contexts=1000, window=16)[0]
    np.testing.assert_allclose(x[0], kept.reps[0][0], atol=1e-6)
    none = context_representations(model, corpus, ["Zzyzx"], [0])
    assert none.counts[0] == 0 and np.isnan(none.reps[0]).all()


def test_organism_crystals_on_the_ci_organism() -> None:
    from llmfeatures.crystals import crystal_config, organism_crystals

    cfg = crystal_config("ci", n_folds=3, n_permutations=20, n_shuffles=2, n_controls=1,
                         context_docs=300, n_random_quads=2000)
    cr = organism_crystals(scale="ci", config=cfg)
    assert cr.layers[0] == -1 and len(cr.layers) == cr.extra["n_layers"] + 1
    assert set(cr.distractor.kind) == {"alone", "context"}
    assert set(cr.lda) == {("alone", -1), ("alone", cr.middle), ("context", cr.middle)}
    for sw in cr.lda.values():
        assert sw.table.index.max() == cr.pairs.relation.nunique() - 1
        assert sw.table[["heldout", "null"]].abs().le(1).all().all()
    assert cr.keep("context").sum() == len(cr.diffs("context"))
    assert len(cr.features) > 20 and cr.features.feature.is_unique
    assert set(cr.search_table) == {"decoded", "single", "residual", "decoded, all pairs"}
    for table in cr.search_table.values():
        assert list(table.index) == [f"top {k}" for k in cfg.ks] + ["all"]
    # every word is searched as a decoded code; a single feature only where a latent is its own
    assert len(cr.extra["vectors"]["decoded"][1]) == cr.extra["n_vocab"]
    assert len(cr.extra["vectors"]["single"][1]) == len(cr.features)
    # the search over every pair of words returns far more candidates than the local one
    assert cr.search_table["decoded, all pairs"].loc["all", "n"] > \
        10 * cr.search_table["decoded"].loc["all", "n"]
    # on the organism the planted pairs are closer to parallelograms than random quadrilaterals
    qs = cr.extra["quad_scores"].groupby("kind").score.median()
    assert qs["planted"] > qs["random"] + 0.05, qs


def test_leading_components_name_the_component_that_carries_the_distractor() -> None:
    from llmfeatures.crystals import leading_components

    rng = np.random.default_rng(2)
    n, d = 240, 24
    rel = np.repeat(["a", "b", "c"], n // 3)
    length, other = rng.normal(size=n), rng.normal(size=n)
    u, v = np.linalg.qr(rng.normal(size=(d, 2)))[0].T
    diffs = np.outer(length, u) * 3 + np.outer(other, v) * 6 + rng.normal(scale=0.3, size=(n, d))
    t = leading_components(diffs, {"length": length, "noise": rng.normal(size=n)}, rel,
                           n_components=3, n_permutations=200)
    lt = t[t.target == "length"].set_index("component")
    # the larger planted direction is PC1, the length direction PC2
    assert abs(lt.r[2]) > 0.9 > lt.null_q95[2] and abs(lt.r[1]) < lt.null_q95[1] + 0.1
    nt = t[t.target == "noise"]
    assert (nt.r.abs() < nt.null_q95 + 0.1).all()
    # PC1 agrees with first_component
    scores, explained = first_component(diffs, rel)
    assert lt.explained[1] == pytest.approx(explained)
