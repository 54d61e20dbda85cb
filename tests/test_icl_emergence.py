"""Concept encoding over the organism's training (chapter 6): onsets on planted curves and the
cached measurement on the ci organism."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from llmfeatures.icl import emergence as em


def test_onset_is_the_half_rise_step():
    steps = [0, 10, 20, 40, 80]
    assert em.onset(steps, [0.2, 0.2, 0.3, 0.8, 0.9]) == 40  # half of 0.7 above 0.2 is 0.55
    assert em.onset(steps[::-1], [0.9, 0.8, 0.3, 0.2, 0.2]) == 40  # order does not matter
    assert em.onset(steps, [0.2, 0.25, 0.22, 0.24, 0.21]) is None  # rises less than 0.1
    with pytest.raises(ValueError, match="non-empty"):
        em.onset([], [])


def _planted(acc_curve, cd_curve) -> em.Emergence:
    steps = [0, 8, 16, 32, 64, 128]
    acc = pd.DataFrame({"step": steps, "family": "f", "task": "t", "accuracy": acc_curve, "n": 10})
    rows = []
    for step, value in zip(steps, cd_curve, strict=True):
        for layer, cd in ((-1, 0.5), (0, value), (1, value - 0.1)):
            rows.append({"step": step, "family": "f", "n_shots": 4, "layer": layer,
                         "concept": "mean", "cd": cd, "cd_input": 0.5})
    for step in steps:  # a per-task row (the table always has them)
        rows.append({"step": step, "family": "f", "n_shots": 4, "layer": 0, "concept": "t",
                     "cd": 0.5, "cd_input": 0.5})
        rows.append({"step": step, "family": "f", "n_shots": 4, "layer": 0, "concept": "null",
                     "cd": 0.5, "cd_input": 0.5})
    return em.Emergence(acc, pd.DataFrame(rows), {"f": 0.5})


def test_co_emergence_on_planted_curves():
    flat = [0.0] * 6
    together = _planted([0, 0, 0, 0.8, 0.9, 0.9], [0.5, 0.5, 0.9, 0.95, 0.95, 0.95])
    s = together.summary()
    assert list(s.best_layer.unique()) == [0]  # the embeddings (layer -1) never count as best
    assert s.cd_length.eq(0.5).all() and s.chance.eq(0.5).all()
    row = em.co_emergence(together, min_rise=0.1).iloc[0]
    assert (row.cd_onset, row.accuracy_onset, row.relation) == (16, 32, "together")
    early = em.co_emergence(_planted([0, 0, 0, 0, 0.1, 0.9], [0.5, 0.9, 0.9, 0.9, 0.9, 0.9]),
                            min_rise=0.1).iloc[0]
    assert (early.gap, early.relation) == (4, "CD first")
    late = em.co_emergence(_planted([0, 0.9, 0.9, 0.9, 0.9, 0.9], [0.5] * 5 + [0.9]),
                           min_rise=0.1).iloc[0]
    assert late.relation == "accuracy first"
    none = em.co_emergence(_planted(flat, [0.5] * 6), min_rise=0.1).iloc[0]
    assert none.relation == "neither rises"


@pytest.mark.slow
def test_icl_over_training_on_the_ci_organism():
    """The notebook's own cached run (about 45 s the first time): every checkpoint, the four
    shared-input families, a random start that answers nothing, and at the end relation tasks
    that the model answers and encodes beyond what their queries tell."""
    from llmfeatures.organism.pipeline import organism_checkpoints

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = em.icl_over_training(scale="ci", progress=False)
    assert res.steps == organism_checkpoints("ci")
    s = res.summary()
    assert set(s.family) == {"country", "person", "pos", "bitwise"}
    first, last = s[s.step == res.steps[0]], s[s.step == res.steps[-1]].set_index("family")
    assert first.accuracy.max() <= 0.1
    for fam in ("country", "person"):
        assert last.accuracy[fam] >= 0.1
        assert last.cd_input[fam] <= last.chance[fam] + 0.15
        assert last.cd[fam] >= last.cd_input[fam] + 0.2
    assert set(em.co_emergence(res).relation) <= {"together", "CD first", "accuracy first",
                                                  "only CD rises", "only accuracy rises",
                                                  "neither rises"}
