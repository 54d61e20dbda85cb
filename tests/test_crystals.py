"""The crystal measurements on planted vectors whose structure is known, and on the ci organism."""

from __future__ import annotations

import numpy as np
import pytest

from llmfeatures.crystals import (
    first_component,
    length_distractor,
    mean_pairwise_cosine,
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
    words = ["Paris", "Copenhagen", "cat", "butterflies"]
    batched = word_representations(model, words, [0], batch_size=4)[0]
    single = np.concatenate([word_representations(model, [w], [0])[0] for w in words])
    np.testing.assert_allclose(batched, single, atol=1e-4)
