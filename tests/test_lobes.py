"""Chapter 4 (lobes): affinities against an independent computation, planted lobes recovered,
the null tests, the block winners, the exercise checks, the organism and the Colab path."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import adjusted_mutual_info_score

from llmfeatures.features import Cooccurrence, FeatureStats, StatsConfig, TokenCorpus
from llmfeatures.lobes import (
    AFFINITIES,
    GEOMETRY,
    affinities,
    affinity,
    ami_test,
    analyse_lobes,
    angular_similarity,
    block_winners,
    count_blocks,
    domain_lobe_table,
    domain_table,
    dominant_domain,
    exercises,
    lobe_accuracy,
    lobe_config,
    random_vector_accuracy,
    spectral_lobes,
    winning_lobes,
)
from tests.conftest import gpt2_stand_in


# ------------------------------------------------------------------------------ planted data
def planted_blocks(seed: int, n_lobes: int = 4, per_lobe: int = 40, n_blocks: int = 1200,
                   p_in: float = 0.35, p_out: float = 0.03):
    """Blocks x features firing with planted lobes: every block has a topic (its lobe); the
    features of that lobe are on with ``p_in``, all others with ``p_out``.  Feature order is
    shuffled so that lobes are not contiguous.  Returns ``(on bool [B, U], lobe [U], topic [B])``.
    """
    rng = np.random.default_rng(seed)
    lobe = rng.permutation(np.repeat(np.arange(n_lobes), per_lobe))
    topic = rng.integers(0, n_lobes, n_blocks)
    p = np.where(lobe[None, :] == topic[:, None], p_in, p_out)
    return rng.random(p.shape) < p, lobe, topic


def independent_affinity(on: np.ndarray, kind: str) -> np.ndarray:
    """Each pair's affinity straight from the block x feature matrix, one pair at a time."""
    T, U = on.shape
    out = np.zeros((U, U))
    for i in range(U):
        for j in range(U):
            a, b = on[:, i], on[:, j]
            n11 = float(np.sum(a & b))
            n10 = float(np.sum(a & ~b))
            n01 = float(np.sum(~a & b))
            n00 = float(np.sum(~a & ~b))
            if kind == "simple_matching":
                v = (n11 + n00) / T
            elif kind == "jaccard":
                v = n11 / (n11 + n10 + n01) if n11 + n10 + n01 else 0.0
            elif kind == "dice":
                v = 2 * n11 / (2 * n11 + n10 + n01) if n11 + n10 + n01 else 0.0
            elif kind == "overlap":
                m = min(n11 + n10, n11 + n01)
                v = n11 / m if m else 0.0
            else:
                den = ((n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)) ** 0.5
                v = (n11 * n00 - n10 * n01) / den + 1 if den else 1.0
            out[i, j] = v
    return out


def _counts(on: np.ndarray) -> np.ndarray:
    x = on.astype(np.int64)
    return x.T @ x


@pytest.mark.parametrize("kind", AFFINITIES)
def test_affinities_match_an_independent_computation(kind) -> None:
    on, _, _ = planted_blocks(seed=11, n_lobes=3, per_lobe=6, n_blocks=300)
    on[:, 0] = False  # never on: 0/0 for the ratios
    on[:, 1] = True  # always on: 0/0 for phi
    got = affinity(_counts(on), len(on), kind)
    want = independent_affinity(on, kind)
    np.testing.assert_allclose(got, want, atol=1e-9, rtol=0)
    assert np.allclose(got, got.T) and got.min() >= 0


def test_phi_follows_the_reference_conventions() -> None:
    on, _, _ = planted_blocks(seed=3, n_lobes=2, per_lobe=4, n_blocks=200)
    on[:, 0] = False
    phi = affinity(_counts(on), len(on), "phi")
    assert np.all(phi[0] == 1.0), "a never-on feature has phi 0 (NaN set to 0), shifted to 1"
    assert np.allclose(np.diag(phi)[1:], 2.0), "a feature is perfectly correlated with itself"
    assert 0 <= phi.min() and phi.max() <= 2


@pytest.mark.parametrize("kind", ["phi", "overlap", "jaccard", "simple_matching"])
def test_planted_lobes_are_recovered(kind) -> None:
    on, lobe, _ = planted_blocks(seed=2024)  # held back: no other test or notebook uses it
    labels = spectral_lobes(affinity(_counts(on), len(on), kind), 4)
    assert adjusted_mutual_info_score(lobe, labels) >= 0.9


def test_weak_lobes_are_not_invented() -> None:
    """Without planted structure the lobes agree with nothing: the test can fail."""
    on, lobe, _ = planted_blocks(seed=5, p_in=0.1, p_out=0.1)
    labels = spectral_lobes(affinity(_counts(on), len(on), "phi"), 4)
    assert adjusted_mutual_info_score(lobe, labels) < 0.1


def test_spectral_lobes_is_seeded_and_checks_its_input() -> None:
    on, _, _ = planted_blocks(seed=8)
    a = affinity(_counts(on), len(on), "phi")
    assert np.array_equal(spectral_lobes(a, 4, seed=1), spectral_lobes(a, 4, seed=1))
    with pytest.raises(ValueError, match="phi \\+ 1"):
        spectral_lobes(a - 1.0, 4)
    with pytest.raises(ValueError, match="k must be"):
        spectral_lobes(a, 1)


def test_bad_counts_get_clear_errors() -> None:
    on, _, _ = planted_blocks(seed=1, n_lobes=2, per_lobe=3, n_blocks=50)
    c = _counts(on)
    with pytest.raises(ValueError, match="square"):
        affinity(c[:, :-1], 50, "phi")
    with pytest.raises(ValueError, match="n_blocks"):
        affinity(c, 10, "phi")
    with pytest.raises(ValueError, match="unknown affinity"):
        affinity(c, 50, "cosine")
    bad = c.copy()
    bad[0, 1] = bad[1, 0] = c[0, 0] + 1
    with pytest.raises(ValueError, match="diagonal"):
        affinity(bad, 50, "jaccard")


def test_angular_similarity() -> None:
    v = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [1.0, 1.0]])
    a = angular_similarity(v)
    np.testing.assert_allclose(a[0, [0, 1, 2, 3]], [1.0, 0.5, 0.0, 0.75], atol=1e-12)
    with pytest.raises(ValueError, match="zero length"):
        angular_similarity(np.zeros((2, 3)))


# ------------------------------------------------------------------------------ null tests
def test_ami_test_separates_related_from_unrelated_labels() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 800)
    related = np.where(rng.random(800) < 0.5, a, rng.integers(0, 5, 800))
    t = ami_test(a, related, 100)
    assert t.value == pytest.approx(adjusted_mutual_info_score(a, related))
    assert t.z > 20 and abs(t.null_mean) < 0.01
    u = ami_test(a, rng.integers(0, 5, 800), 100)
    assert abs(u.z) < 4


def test_lobe_accuracy_uses_the_reference_split() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 500)
    centres = rng.standard_normal((3, 16)) * 3
    x = centres[labels] + rng.standard_normal((500, 16))
    assert lobe_accuracy(x, labels) > 0.95
    # labels readable only in the last 20% of the rows: the first 80% train, so the test fails
    scrambled = labels.copy()
    scrambled[:400] = rng.integers(0, 3, 400)
    assert lobe_accuracy(x, scrambled) < 0.6
    r = random_vector_accuracy(labels, 16, n_trials=10)
    assert abs(r.mean() - 1 / 3) < 0.08


def test_winning_lobe_is_by_share_not_by_count() -> None:
    labels = np.array([0] * 10 + [1] * 2)
    on = np.zeros((3, 12), bool)
    on[0, [0, 1, 2, 10]] = True  # 3/10 of lobe 0, 1/2 of lobe 1
    on[1, [0, 1, 2, 3, 4, 5]] = True
    assert winning_lobes(on, labels).tolist() == [1, 0, -1]


def test_domains_and_lobes_of_planted_blocks() -> None:
    on, lobe, topic = planted_blocks(seed=9)
    dom = dominant_domain(on, topic, 4)
    assert np.array_equal(dom, lobe), "each feature is most often on in its own topic's blocks"
    win = winning_lobes(on, lobe)
    table = domain_lobe_table(win, topic, 4, 4)
    assert np.allclose(table.sum(1), 1)
    assert np.all(np.diag(table) > 0.95)


# ------------------------------------------------------------------------------ the analysis
def _planted_stats(seed: int = 21):
    """FeatureStats with only block co-occurrence, built from planted blocks (topic = domain),
    and an SAE-like object whose decoder rows carry the lobe in a few coordinates."""
    on, lobe, topic = planted_blocks(seed=seed, n_lobes=3, per_lobe=30, n_blocks=900)
    n_docs = len(on)  # one block per document
    corpus = TokenCorpus(tokens=np.zeros(n_docs * 4, np.int64),
                         offsets=np.arange(0, 4 * n_docs + 1, 4),
                         doc_labels={"domain": topic}, label_names={"domain": ["x", "y", "z"]})
    ptr = np.concatenate([[0], np.cumsum(on.sum(1))])
    cooc = Cooccurrence(layer=1, block_size=4, threshold=1.0, n_blocks=len(on),
                        counts=_counts(on), n_on=on.sum(0), block_doc=np.arange(n_docs),
                        block_ptr=ptr, block_units=np.nonzero(on)[1])
    stats = FeatureStats(config=StatsConfig(keep_blocks=True), corpus=corpus,
                         cooccurrence={1: cooc})
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((on.shape[1], 12))
    w[:, :3] += 3 * np.eye(3)[lobe]
    return stats, SimpleNamespace(W_dec=torch.tensor(w, dtype=torch.float32)), lobe


def test_analyse_lobes_on_planted_stats() -> None:
    stats, sae, lobe = _planted_stats()
    cfg = lobe_config("ci", ks=(2, 3), n_permutations=20, n_random=4)
    res = analyse_lobes(stats, sae, 1, cfg)
    assert set(res.table.affinity) == {*AFFINITIES, GEOMETRY}
    r = res.row("phi", 3)
    assert r.ami_domain > 0.9 and r.ami_domain_z > 5
    assert adjusted_mutual_info_score(lobe, res.labels[("phi", 3)]) > 0.9
    assert r.accuracy > 0.8, "the decoders carry the lobe, so the regression finds it"
    assert res.row(res.best, 3).random_mean < 0.5
    t = domain_table(stats, res, "phi", 3)
    assert isinstance(t, pd.DataFrame) and t.shape == (3, 3)
    assert np.sort(t.values.max(1)).min() > 0.9
    win, dom = block_winners(stats, res, "phi", 3)
    assert len(win) == len(dom) == stats.cooccurrence[1].n_blocks
    with pytest.raises(KeyError, match="k="):
        res.row("phi", 7)


def test_analyse_lobes_checks_its_inputs() -> None:
    stats, sae, _ = _planted_stats()
    with pytest.raises(KeyError, match="layer 0"):
        analyse_lobes(stats, sae, 0)
    short = SimpleNamespace(W_dec=sae.W_dec[:-1])
    with pytest.raises(ValueError, match="latents"):
        analyse_lobes(stats, short, 1, lobe_config("ci"))
    with pytest.raises(ValueError, match="too few"):
        analyse_lobes(stats, sae, 1, lobe_config("ci", ks=(2, 200)))
    with pytest.raises(ValueError, match="unknown affinities"):
        lobe_config("ci", affinities=("cosine",))


def test_count_blocks() -> None:
    assert count_blocks([1024, 300, 256], 256) == 4 + 2 + 1


# ------------------------------------------------------------------------------ exercises
def test_exercise_checks_accept_right_and_reject_wrong_answers() -> None:
    exercises.check_phi(lambda c, t: affinity(c, t, "phi"))
    with pytest.raises(AssertionError, match="add 1"):
        exercises.check_phi(lambda c, t: affinity(c, t, "phi") - 1)
    with pytest.raises(AssertionError, match="NaN"):
        def nan_phi(c, t):
            out = affinity(c, t, "phi")
            out[0, :] = np.nan
            return out
        exercises.check_phi(nan_phi)

    def ami_null(a, b, n, seed):
        t = ami_test(a, b, n, seed)
        return t.value, t.null_mean, t.null_std
    exercises.check_ami_null(ami_null)
    with pytest.raises(AssertionError, match="no spread"):
        exercises.check_ami_null(lambda a, b, n, s: (adjusted_mutual_info_score(a, b), 0.0, 0.0))

    exercises.check_winning_lobe(lambda on, lab: int(winning_lobes(on[None], lab)[0]))

    def by_count(on, lab):
        return int(np.bincount(lab[on], minlength=lab.max() + 1).argmax()) if on.any() else -1
    with pytest.raises(AssertionError, match="share"):
        exercises.check_winning_lobe(by_count)


# ------------------------------------------------------------------------------ the organism
@pytest.mark.slow
def test_lobes_on_the_ci_organism() -> None:
    from llmfeatures.loaders import load_sae, load_world
    from llmfeatures.lobes import lobe_stats, middle_layer, sensitivity_grid

    n_domains = len(load_world(scale="ci").domains)  # the grid's k
    cfg = lobe_config("ci", ks=(2, n_domains), n_permutations=30, n_random=4,
                      grid_block_sizes=(32,), grid_thresholds=(1.0,))
    layer = middle_layer()
    stats = lobe_stats(cfg, progress=False)
    assert stats.cooccurrence[layer].block_size == cfg.block_size
    res = analyse_lobes(stats, load_sae("organism", layer), layer, cfg)
    best = res.row(res.best, n_domains)
    assert best.ami_domain_z > 5, "even the ci organism's lobes follow the document domains"
    grid = sensitivity_grid(cfg, affinity=res.best, progress=False)
    assert len(grid) == 1 and grid.ami_domain.iloc[0] == pytest.approx(best.ami_domain)


# ------------------------------------------------------------------------------ Colab path
@pytest.mark.usefixtures("no_network")
def test_harvest_lobes_on_a_stand_in(tmp_path, monkeypatch) -> None:
    """The Gemma path (a TransformerLens model, its SAE, texts with domains) on a GPT-2 stand-in."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from llmfeatures.lobes import harvest_lobes
    from llmfeatures.organism.tokenizer import train_tokenizer

    monkeypatch.setenv("LLMFEATURES_HOME", str(tmp_path))
    code = [f"def f{i}(x): return x + {i} * y" for i in range(12)]
    prose = [f"the {a} walked to the {b} and saw a {c}" for a in ("cat", "dog", "boy")
             for b in ("park", "shop") for c in ("bird", "tree")]
    texts, domains = code + prose, ["code"] * len(code) + ["prose"] * len(prose)
    tok = train_tokenizer(texts, vocab_size=300)
    model = gpt2_stand_in(tok, n_head=2, n_positions=64)
    sae = StandardSAE(StandardSAEConfig(d_in=32, d_sae=48,
                                        metadata=SAEMetadata(hook_name="blocks.1.hook_resid_post")))
    stats = harvest_lobes(model, sae, 1, texts, domains, block_size=4, threshold=0.01,
                          max_tokens_per_doc=8, progress=False)
    cooc = stats.cooccurrence[1]
    assert cooc.n_blocks == count_blocks(stats.corpus.lengths(), 4)
    assert stats.corpus.lengths().max() <= 8 and stats.label_names["domain"] == ["code", "prose"]
    res = analyse_lobes(stats, sae, 1, lobe_config("ci", ks=(2,), min_blocks=2,
                                                    n_permutations=10, n_random=2))
    assert res.domain is not None and len(res.labels[("phi", 2)]) == len(res.features)
    with pytest.raises(ValueError, match="one per text"):
        harvest_lobes(model, sae, 1, texts, domains[:-1])


def test_affinities_helper_returns_every_kind() -> None:
    on, _, _ = planted_blocks(seed=4, n_lobes=2, per_lobe=3, n_blocks=40)
    assert set(affinities(_counts(on), 40)) == set(AFFINITIES)
