"""Concept Decodability, the HookedTransformer wrapper, training records and patching."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import pandas as pd
import pytest
import torch

from llmfeatures.icl.baselines import baseline_curves
from llmfeatures.icl.decodability import (
    cd_by_layer,
    collect_icl_representations,
    concept_decodability,
    knn_predict,
    model_layers,
    resid_hook,
)
from llmfeatures.icl.model import ICLModelConfig, build_model, interleave
from llmfeatures.icl.patching import concept_patch_hook, concept_subspace, patching_matrix
from llmfeatures.icl.plots import plot_error_by_context
from llmfeatures.icl.tasks import TaskConfig, sample_batch
from llmfeatures.icl.train import (
    TRAIN_PRESETS,
    ICLTrainConfig,
    active_bases,
    checkpoint_steps,
    concept_onsets,
    run_config,
    train,
)

warnings.filterwarnings("ignore", category=DeprecationWarning)


def test_cd_separated_clusters_is_one():
    g = torch.Generator().manual_seed(0)
    centres = 20 * torch.randn(4, 8, generator=g)
    labels = torch.arange(4).repeat_interleave(100)
    reps = centres[labels] + torch.randn(400, 8, generator=g)
    res = concept_decodability(reps, labels, k=10, device="cpu")
    assert res.mean == 1.0 and torch.equal(res.per_concept, torch.ones(4))


def test_cd_identical_distributions_is_chance():
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(4).repeat_interleave(100)
    scores = [concept_decodability(torch.randn(400, 16, generator=g), labels, device="cpu").mean
              for _ in range(5)]
    assert abs(sum(scores) / 5 - 0.25) < 0.06


def test_knn_is_leave_one_out_and_breaks_ties_by_distance():
    # two tight pairs far apart: each point's only close neighbour is its partner
    reps = torch.tensor([[0.0], [0.1], [10.0], [10.1]])
    labels = torch.tensor([0, 1, 0, 1])
    # with k=1 a point is never its own neighbour, so every point is misclassified
    assert (knn_predict(reps, labels, k=1) != labels).all()
    # k=2: one vote for each class; the tie goes to the nearer neighbour's class
    assert torch.equal(knn_predict(reps, labels, k=2), torch.tensor([1, 0, 1, 0]))
    with pytest.raises(ValueError, match="k must be"):
        knn_predict(reps, labels, k=4)


def test_knn_matches_scikit_learn_on_tie_free_data():
    from sklearn.neighbors import KNeighborsClassifier

    g = torch.Generator().manual_seed(4)
    for C, k in ((2, 5), (2, 9), (4, 7)):
        labels = torch.arange(C).repeat_interleave(30)
        reps = torch.randn(len(labels), 6, generator=g) + 1.5 * torch.randn(C, 6, generator=g)[labels]
        ref = KNeighborsClassifier(n_neighbors=k).fit(reps.numpy(), labels.numpy())
        # X=None: every point against the others, never against itself (leave-one-out)
        want = torch.as_tensor(ref.predict(None))
        neigh = torch.as_tensor(ref.kneighbors(None, k, return_distance=False))
        votes = torch.nn.functional.one_hot(labels[neigh], C).sum(1)
        tie_free = (votes == votes.max(1, keepdim=True).values).sum(1) == 1
        assert tie_free.float().mean() > 0.8  # the comparison covers most points
        got = knn_predict(reps, labels, k)
        assert torch.equal(got[tie_free], want[tie_free]), (C, k)


def test_cd_rejects_bad_input_with_the_problem_named():
    g = torch.Generator().manual_seed(5)
    reps = torch.randn(40, 4, generator=g)
    labels = torch.arange(4).repeat_interleave(10)
    bad = reps.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or inf in 1 of 40 rows"):
        concept_decodability(bad, labels, device="cpu")
    bad[3, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        knn_predict(bad, labels)
    with pytest.raises(ValueError, match=r"labels skip concepts \[2\]"):
        concept_decodability(reps, labels.masked_fill(labels == 2, 3), device="cpu")
    with pytest.raises(ValueError, match="at least two concepts"):
        concept_decodability(reps, torch.zeros(40, dtype=torch.long), device="cpu")
    with pytest.raises(ValueError, match="negative label -1"):
        concept_decodability(reps, labels - 1, device="cpu")
    with pytest.raises(ValueError, match="reps"):
        concept_decodability(reps, labels[:-1], device="cpu")


def test_layers_follow_the_package_convention():
    """Layer L is blocks.L.hook_resid_post (the tensor load_sae(name, L) reads); -1 the embeddings."""
    from llmfeatures.loaders import EMBED

    assert EMBED == -1 and resid_hook(EMBED) == "blocks.0.hook_resid_pre"
    assert resid_hook(0) == "blocks.0.hook_resid_post" and resid_hook(2) == "blocks.2.hook_resid_post"
    with pytest.raises(ValueError, match="layer must be an integer >= -1"):
        resid_hook(-2)
    task = TaskConfig(K=5)
    model = build_model(ICLModelConfig(n_layers=2, d_model=16, n_heads=2), task.D, task.K, device="cpu")
    assert model_layers(model) == [-1, 0, 1]
    reps, labels = collect_icl_representations(model, task, n_per_concept=6)
    b = sample_batch(task, len(labels), basis=labels, generator=torch.Generator().manual_seed(777))
    _, cache = model.run_with_cache(model.tokens(b.xs, b.ys))
    last_x = 2 * (task.K - 1)
    for layer, hook in ((-1, "blocks.0.hook_resid_pre"), (0, "blocks.0.hook_resid_post"),
                        (1, "blocks.1.hook_resid_post")):
        torch.testing.assert_close(reps[resid_hook(layer)], cache[hook][:, last_x])
    cd = cd_by_layer(model, task, n_per_concept=6, k=3)
    assert sorted(cd.layer.unique()) == [-1, 0, 1]
    with pytest.raises(ValueError, match=r"no hook \['blocks.2.hook_resid_post'\]: its layers are -1..1"):
        collect_icl_representations(model, task, n_per_concept=6, hooks=[resid_hook(2)])


def test_model_shapes_hooks_and_positions():
    task = TaskConfig(K=6)
    model = build_model(ICLModelConfig(n_layers=2, d_model=16, n_heads=2), task.D, task.K, device="cpu")
    b = sample_batch(task, 3)
    tokens = interleave(b.xs, b.ys)
    assert tokens.shape == (3, 12, 17)
    assert torch.equal(tokens[:, 0::2, :16], b.xs) and torch.equal(tokens[:, 1::2, 16], b.ys)
    assert model.predict(b.xs, b.ys).shape == (3, 6)
    out, cache = model.run_with_cache(tokens)
    # the residual stream starts as read-in plus TransformerLens's learned position embedding
    torch.testing.assert_close(cache["blocks.0.hook_resid_pre"],
                               model.read_in(tokens) + model.W_pos[:12])
    assert cache[resid_hook(1)].shape == (3, 12, 16)
    assert cache["blocks.1.attn.hook_pattern"].shape == (3, 2, 12, 12)
    # causal: changing y_3 cannot change predictions of y_1..y_3, only later ones
    ys2 = b.ys.clone()
    ys2[:, 2] += 5
    p1, p2 = model.predict(b.xs, b.ys), model.predict(b.xs, ys2)
    torch.testing.assert_close(p1[:, :3], p2[:, :3])
    assert (p1[:, 3:] - p2[:, 3:]).abs().max() > 1e-4
    # a zero-ablation hook changes the output, as every TL hook should
    ablated = model.run_with_hooks(tokens, fwd_hooks=[("hook_pos_embed", lambda a, hook: a * 0)])
    assert not torch.allclose(ablated, out)
    with pytest.raises(ValueError, match="float tokens"):
        model(b.xs)


@pytest.mark.parametrize("scale", sorted(TRAIN_PRESETS))
def test_every_preset_trains(scale):
    cfg = run_config(scale)
    # a curriculum must reach all bases well before the end, so the last checkpoints see them all
    assert active_bases(cfg, int(0.7 * cfg.n_steps)) == cfg.task.n_bases
    assert checkpoint_steps(cfg.n_steps, cfg.n_checkpoints)[-1] == cfg.n_steps
    # two real steps of the preset's own model and optimiser, on small batches and evaluations
    res = train(replace(cfg, n_steps=2, n_checkpoints=2, batch_size=8, eval_per_basis=4, cd_per_concept=12),
                device="cpu", progress=False)
    assert res.model.cfg.n_layers == cfg.model.n_layers and res.model.token_format == cfg.model.token_format
    assert sorted(res.states) == [0, 2] and res.history.mse.notna().all()


def test_schedule_and_checkpoints():
    assert checkpoint_steps(1000, 5)[0] == 0 and checkpoint_steps(1000, 5)[-1] == 1000
    assert checkpoint_steps(1000, 5) == sorted(set(checkpoint_steps(1000, 5)))
    cfg = ICLTrainConfig(lr=1.0, warmup_steps=10, n_steps=110, schedule="cosine")
    assert math.isclose(cfg.lr_at(0), 0.1) and math.isclose(cfg.lr_at(10), 1.0)
    assert math.isclose(cfg.lr_at(60), 0.55)  # halfway through the cosine: (1 + 0.1) / 2
    assert math.isclose(cfg.lr_at(110), 0.1) and math.isclose(cfg.lr_at(500), 0.1)
    flat = ICLTrainConfig(lr=1.0, warmup_steps=4, n_steps=110, schedule="constant")
    assert [flat.lr_at(s) for s in (0, 3, 4, 109)] == [0.25, 1.0, 1.0, 1.0]


@pytest.mark.slow
def test_training_records_and_patching_run():
    task = TaskConfig(K=8)
    cfg = ICLTrainConfig(task=task, model=ICLModelConfig(n_layers=2, d_model=16, n_heads=2),
                      batch_size=32, n_steps=30, lr=3e-3, n_checkpoints=4, eval_per_basis=20,
                      cd_per_concept=20)
    res = train(cfg, device="cpu", progress=False)
    steps = checkpoint_steps(30, 4)
    assert sorted(res.states) == steps
    assert set(res.history.columns) == {"step", "basis", "n_examples", "mse"}
    assert len(res.history) == len(steps) * 4 * 8
    assert len(res.cd) == len(steps) * 3 * 5  # layers -1 (embeddings), 0, 1; 4 concepts + mean
    assert sorted(res.cd.layer.unique()) == [-1, 0, 1]
    assert res.cd.cd.between(0, 1).all()
    # the loss falls during training
    h = res.history.groupby("step").mse.mean()
    assert h.iloc[-1] < h.iloc[0]
    reps, labels = collect_icl_representations(res.model, task, n_per_concept=10)
    assert reps[resid_hook(1)].shape == (40, 16) and labels.shape == (40,)
    for mode in ("concept", "full"):
        pr = patching_matrix(res.model, task, layer=1, n_per_concept=20, mode=mode)
        assert pr.delta.shape == (4, 4) and torch.isfinite(pr.delta).all() and pr.mode == mode
    assert isinstance(cd_by_layer(res.model, task, n_per_concept=15), pd.DataFrame)
    # the model's error by context length against the baselines: 4 concepts + 4 references
    bl = baseline_curves(task, n_seqs=20, lasso_alphas=(0.05,), ridge_alphas=(0.1,))
    fig = plot_error_by_context(res.history, bl, step=steps[-1])
    assert len(fig.axes[0].lines) == 8 and len(fig.axes[0].lines[0].get_xdata()) == 8
    with pytest.raises(ValueError, match="recompute"):
        plot_error_by_context(res.history, bl[bl.method != "one GD step on true basis"], steps[-1])


def test_error_by_context_figure_follows_the_task_dimension():
    task = TaskConfig.variant("six", K=6)  # D = 24
    bl = baseline_curves(task, n_seqs=20, lasso_alphas=(0.05,), ridge_alphas=(0.1,))
    hist = pd.DataFrame([{"step": 9, "basis": b, "n_examples": n, "mse": 1.0}
                         for b in range(task.n_bases) for n in range(task.K)])
    labels = [line.get_label() for line in plot_error_by_context(hist, bl, step=9).axes[0].lines]
    assert labels[task.n_bases:] == ["least squares on true basis", "one GD step on true basis",
                                     "LASSO (24 dims)", "one GD step (24 dims)"]


def test_concept_patch_moves_only_the_concept_coordinates():
    g = torch.Generator().manual_seed(0)
    T, d, C = 6, 10, 4
    # concept means differ only in the first 3 coordinates (plus a shared offset)
    offset = torch.randn(T, d, generator=g)
    means = offset.expand(C, T, d).clone()
    means[:, :, :3] += 5 * torch.randn(C, T, 3, generator=g)
    pos = torch.tensor([1, 3, 5])
    basis = concept_subspace(means, pos)
    assert basis.shape == (3, d, C)
    # the subspace is the span of the centred means: 3 orthonormal columns inside the first 3 axes
    gram = basis.transpose(1, 2) @ basis
    torch.testing.assert_close(gram.diagonal(dim1=1, dim2=2).sum(-1), torch.full((3,), 3.0))
    assert basis[:, 3:].abs().max() < 1e-5
    act = torch.randn(2, T, d, generator=g)
    patched = concept_patch_hook(means[2], basis, pos)(act.clone())
    # patched positions take concept 2's coordinates; everything else is left alone
    torch.testing.assert_close(patched[:, pos, :3], means[2, pos, :3].expand(2, -1, -1))
    torch.testing.assert_close(patched[:, pos, 3:], act[:, pos, 3:])
    keep = torch.tensor([0, 2, 4])
    torch.testing.assert_close(patched[:, keep], act[:, keep])
    with pytest.raises(ValueError, match="mode"):
        patching_matrix(build_model(ICLModelConfig(n_layers=1, d_model=16, n_heads=2), 16, 4, device="cpu"),
                        TaskConfig(K=4), layer=1, mode="swap")


def test_pairs_token_format_repeats_x_in_the_y_token():
    task = TaskConfig(K=5)
    b = sample_batch(task, 2, generator=torch.Generator().manual_seed(3))
    paper, pairs = interleave(b.xs, b.ys), interleave(b.xs, b.ys, "pairs")
    assert torch.equal(paper[:, 0::2], pairs[:, 0::2])  # x tokens are the same
    assert torch.equal(pairs[:, 1::2, :16], b.xs) and torch.equal(pairs[:, 1::2, 16], b.ys)
    assert torch.count_nonzero(paper[:, 1::2, :16]) == 0
    model = build_model(ICLModelConfig(n_layers=1, d_model=16, n_heads=2, token_format="pairs"),
                        task.D, task.K, device="cpu")
    assert torch.equal(model.tokens(b.xs, b.ys), pairs)
    # still causal: y_3 (and its x) cannot reach the predictions of y_1..y_3
    ys2 = b.ys.clone()
    ys2[:, 2] += 5
    torch.testing.assert_close(model.predict(b.xs, b.ys)[:, :3], model.predict(b.xs, ys2)[:, :3])
    with pytest.raises(ValueError, match="token_format"):
        ICLModelConfig(token_format="xy")
    with pytest.raises(ValueError, match="token_format"):
        interleave(b.xs, b.ys, "xy")


@pytest.mark.slow
def test_curriculum_trains_on_the_first_bases_only():
    task = TaskConfig(K=10)
    cfg = ICLTrainConfig(task=task, model=ICLModelConfig(n_layers=2, d_model=32, n_heads=2, act_fn="gelu",
                                                   token_format="pairs"),
                      batch_size=64, n_steps=400, lr=3e-3, n_checkpoints=2, eval_per_basis=50,
                      cd_per_concept=20, curriculum=((0, 1),))
    assert checkpoint_steps(400, 2) == [0, 400]
    assert [active_bases(cfg, s) for s in (0, 399)] == [1, 1]
    res = train(cfg, device="cpu", progress=False)
    h = res.history
    last = h[(h.step == h.step.max()) & (h.n_examples >= 6)]
    per_basis = last.groupby("basis").mse.mean()
    # only basis 0 was ever seen: it is learned, the others are not
    assert per_basis[0] < 0.6 * per_basis[1:].min()
    staged = ICLTrainConfig(curriculum=((0, 1), (100, 2), (300, 4)))
    assert [active_bases(staged, s) for s in (0, 99, 100, 299, 300, 10_000)] == [1, 1, 2, 2, 4, 4]
    for bad in (((5, 1),), ((0, 1), (0, 2)), ((0, 5),), ((0, 0),)):
        with pytest.raises(ValueError, match="curriculum"):
            ICLTrainConfig(curriculum=bad)
    with pytest.raises(ValueError, match="act_fn"):
        ICLModelConfig(act_fn="tanh")


def test_concept_onsets_pair_each_error_fall_with_its_cd_rise():
    steps = [0, 1, 10, 100, 1000, 10000]
    # B1: error falls and CD rises between steps 10 and 100; B2: error falls late (1000 -> 10000)
    # while its CD rises early (at 10); B3: neither moves
    err = {0: [2, 2, 2, 0.1, 0.1, 0.1], 1: [2, 2, 2, 2, 2, 0.05], 2: [2] * 6}
    cdv = {0: [0.3, 0.3, 0.3, 0.95, 0.95, 0.95], 1: [0.3, 0.3, 0.9, 0.9, 0.9, 0.9], 2: [0.3] * 6}
    hist = pd.DataFrame([{"step": s, "basis": b, "n_examples": 5, "mse": e[i]}
                         for b, e in err.items() for i, s in enumerate(steps)])
    cd = pd.DataFrame([{"step": s, "layer": 2, "concept": str(b), "cd": v[i]}
                       for b, v in cdv.items() for i, s in enumerate(steps)])
    on = concept_onsets(hist, cd, layer=2, n_examples=5).set_index("concept")
    assert on.loc[0, "error_onset"] == 100 and on.loc[0, "cd_onset"] == 100 and on.loc[0, "together"]
    assert on.loc[1, "error_onset"] == 10000 and on.loc[1, "cd_onset"] == 10
    assert on.loc[1, "gap"] == 3 and not on.loc[1, "together"]  # CD three checkpoints first
    assert pd.isna(on.loc[2, "error_onset"]) and pd.isna(on.loc[2, "cd_onset"]) and not on.loc[2, "together"]


def test_concept_onsets_time_the_fall_below_the_agnostic_baseline():
    steps = [0, 1, 10, 100, 1000, 10000]
    # B1: half of its log-fall comes early (2 -> 0.25 at step 10, still above the agnostic 0.2),
    # the concept-specific part (below 0.2) with its CD rise at 1000; B2 dips below the baseline
    # at 10, climbs back at 100 and stays below from 1000; B3 never gets below it
    err = {0: [2, 2, 0.25, 0.22, 0.05, 0.04], 1: [2, 2, 0.1, 0.5, 0.1, 0.1], 2: [2, 1, 0.5, 0.4, 0.3, 0.3]}
    cdv = {0: [0.3, 0.3, 0.3, 0.3, 0.9, 0.95], 1: [0.3, 0.3, 0.3, 0.3, 0.9, 0.9], 2: [0.3] * 6}
    hist = pd.DataFrame([{"step": s, "basis": b, "n_examples": 4, "mse": e[i]}
                         for b, e in err.items() for i, s in enumerate(steps)])
    cd = pd.DataFrame([{"step": s, "layer": 1, "concept": str(b), "cd": v[i]}
                       for b, v in cdv.items() for i, s in enumerate(steps)])
    on = concept_onsets(hist, cd, layer=1, n_examples=4, agnostic=0.2).set_index("concept")
    assert on.loc[0, "error_onset"] == 10 and on.loc[0, "cd_onset"] == 1000
    assert not on.loc[0, "together"] and on.loc[0, "gap"] == -2  # the early fall needs no concept
    assert on.loc[0, "below_agnostic"] == 1000 and on.loc[0, "together_agnostic"]
    assert on.loc[1, "below_agnostic"] == 1000 and on.loc[1, "gap_agnostic"] == 0  # stays below
    assert pd.isna(on.loc[2, "below_agnostic"]) and not on.loc[2, "together_agnostic"]
    assert "below_agnostic" not in concept_onsets(hist, cd, layer=1, n_examples=4).columns
