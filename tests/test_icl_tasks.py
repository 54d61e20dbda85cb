"""The sparse-regression mixture and its exact baselines, checked against closed forms and sklearn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso, Ridge

from llmfeatures.icl import baselines as bl
from llmfeatures.icl.tasks import TaskConfig, make_bases, sample_batch


def test_bases_variants():
    assert make_bases("orthogonal", 16, 4, 4) == (
        (0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11), (12, 13, 14, 15)
    )
    six = TaskConfig.variant("six")
    m = six.mask()
    assert m.shape == (6, 24) and (m.sum(0) == 1).all() and (m.sum(1) == 4).all()
    ov = TaskConfig.variant("overlapping")
    m = ov.mask().long()
    assert m.shape == (8, 16) and (m.sum(1) == 4).all()
    overlap = m @ m.T
    # bases of different groups are disjoint; inside a group every basis overlaps others
    assert (overlap[:4, 4:] == 0).all()
    assert m[:4].any(0).sum() == 8 and m[4:].any(0).sum() == 8
    assert set(overlap[:4, :4].flatten().tolist()) == {0, 2, 4}
    with pytest.raises(ValueError, match="need D"):
        make_bases("orthogonal", 10, 4, 4)
    with pytest.raises(ValueError, match="unknown"):
        TaskConfig(family="diagonal")


def test_sample_batch_structure():
    cfg = TaskConfig(noise_std=0.0)
    b = sample_batch(cfg, 64, generator=torch.Generator().manual_seed(0))
    assert b.xs.shape == (64, 20, 16) and b.ys.shape == (64, 20) and b.w.shape == (64, 16)
    # w is supported exactly on the sequence's basis and y = w . x without noise
    assert torch.equal(b.w != 0, cfg.mask()[b.basis])
    torch.testing.assert_close(b.ys, torch.einsum("bkd,bd->bk", b.xs, b.w))
    fixed = sample_batch(cfg, 5, basis=2, generator=torch.Generator().manual_seed(0))
    assert (fixed.basis == 2).all()
    with pytest.raises(ValueError, match="basis indices"):
        sample_batch(cfg, 3, basis=7)


def test_basis_least_squares_matches_closed_form_noiseless():
    # min-norm LS in r dims with n < r examples leaves E||w_perp||^2 = r - n; exact once n >= r
    cfg = TaskConfig(noise_std=0.0, K=8)
    b = sample_batch(cfg, 4000, generator=torch.Generator().manual_seed(1))
    xs, ys = b.xs.double(), b.ys.double()
    err = bl.squared_error_by_n(bl.basis_least_squares(xs, ys, cfg.mask()[b.basis]), ys)
    for n in range(4):
        assert abs(err[n].item() - (4 - n)) < 0.25, (n, err[n].item())
    assert err[4:].max() < 1e-8


def test_basis_least_squares_matches_closed_form_noisy():
    # OLS test error with n > r + 1 examples: s^2 (1 + r / (n - r - 1))
    s = 0.5
    cfg = TaskConfig(noise_std=s, K=12)
    b = sample_batch(cfg, 20000, generator=torch.Generator().manual_seed(2))
    xs, ys = b.xs.double(), b.ys.double()
    err = bl.squared_error_by_n(bl.basis_least_squares(xs, ys, cfg.mask()[b.basis]), ys)
    for n in (7, 9, 11):
        expected = s**2 * (1 + 4 / (n - 4 - 1))
        assert abs(err[n].item() - expected) / expected < 0.06, (n, err[n].item(), expected)


def test_one_step_gd_matches_its_closed_form():
    s, r, D = 0.3, 4, 16
    cfg = TaskConfig(noise_std=s, K=16)
    b = sample_batch(cfg, 40000, generator=torch.Generator().manual_seed(5))
    xs, ys = b.xs.double(), b.ys.double()
    mask = cfg.mask()[b.basis]
    known = bl.one_step_gd(xs, ys, r, s, mask)
    blind = bl.one_step_gd(xs, ys, r, s)
    # explicit on one sequence: eta/n * x_q . sum_i y_i x_i over the basis dimensions
    dims, n = mask[7], 5
    direct = bl.one_step_gd_rate(n, r, r, s) / n * (xs[7, n, dims] @ (xs[7, :n, dims].T @ ys[7, :n]))
    assert abs(known[7, n].item() - direct.item()) < 1e-10
    assert (known[:, 0] == 0).all()
    for preds, m in ((known, r), (blind, D)):
        err = bl.squared_error_by_n(preds, ys)
        for n in (2, 6, 15):
            expected = r * (1 - bl.one_step_gd_rate(n, m, r, s)) + s**2
            assert abs(err[n].item() - expected) / expected < 0.05, (m, n, err[n].item(), expected)
            # the step size is the best one: shrinking or growing it costs
            for f in (0.8, 1.25):
                assert ((f * preds[:, n] - ys[:, n]) ** 2).mean() > err[n]
    # knowing the concept is worth a lot even to this crude algorithm
    assert bl.squared_error_by_n(known, ys)[15] < 0.6 * bl.squared_error_by_n(blind, ys)[15]
    with pytest.raises(ValueError, match="mask"):
        bl.one_step_gd(xs, ys, r, s, mask.float())


def test_ridge_and_lasso_match_sklearn():
    rng = np.random.default_rng(0)
    B, K, D = 3, 10, 16
    xs = torch.tensor(rng.normal(size=(B, K, D)))
    w = torch.zeros(B, D)
    w[:, :4] = torch.tensor(rng.normal(size=(B, 4)))
    ys = torch.einsum("bkd,bd->bk", xs, w.double()) + 0.1 * torch.tensor(rng.normal(size=(B, K)))
    pr = bl.ridge(xs, ys, alpha=0.5)
    pl = bl.lasso(xs, ys, alpha=0.05)
    for i in range(B):
        for n in (1, 3, 6, 9):
            X, y = xs[i, :n].numpy(), ys[i, :n].numpy()
            q = xs[i, n].numpy()[None]
            r = Ridge(alpha=0.5, fit_intercept=False).fit(X, y).predict(q)[0]
            ls = Lasso(alpha=0.05, fit_intercept=False, tol=1e-10, max_iter=100000)
            la = ls.fit(X, y).predict(q)[0]
            assert abs(pr[i, n].item() - r) < 1e-8
            assert abs(pl[i, n].item() - la) < 2e-3, (i, n, pl[i, n].item(), la)


def test_bayes_mixture_single_basis_is_ridge_and_identifies_concept():
    cfg = TaskConfig(noise_std=0.3, K=16)
    b = sample_batch(cfg, 200, generator=torch.Generator().manual_seed(3))
    xs, ys = b.xs.double(), b.ys.double()
    mask = cfg.mask()
    # one-basis prior == ridge on that basis with alpha = s^2
    only0 = b.basis == 0
    one = bl.bayes_mixture(xs[only0], ys[only0], mask[:1], 0.3)
    ref = bl.basis_least_squares(xs[only0], ys[only0], mask[b.basis[only0]], alpha=0.09)
    torch.testing.assert_close(one, ref)
    # unknown basis: worse than knowing it early on, as good once the basis is identified
    mix = bl.squared_error_by_n(bl.bayes_mixture(xs, ys, mask, 0.3), ys)
    known = bl.squared_error_by_n(bl.basis_least_squares(xs, ys, mask[b.basis], alpha=0.09), ys)
    assert mix[2] > known[2] * 1.2
    assert abs(mix[-1] - known[-1]) < 0.1 * known[-1] + 0.01


@pytest.mark.slow
def test_baseline_curves_ordering():
    cfg = TaskConfig()
    df = bl.baseline_curves(cfg, n_seqs=100, lasso_alphas=(0.01, 0.05), ridge_alphas=(0.1,))
    piv = df.pivot(index="n_examples", columns="method", values="mse")
    assert list(piv.index) == list(range(20))
    known = piv["least squares on true basis"]
    lasso = piv["LASSO (16 dims)"]
    ridge = piv["ridge (16 dims)"]
    bayes = piv["Bayes optimal (basis unknown)"]
    assert known[8] < 0.05 and lasso[8] > 5 * known[8]  # knowing the concept helps a lot
    assert lasso[10] < ridge[10]  # sparsity helps without the concept
    assert bayes[10] < lasso[10]
    one_step = piv["one GD step on true basis"]
    assert known[10] < lasso[10] < one_step[10] < piv["one GD step (16 dims)"][10]
    assert abs(piv["zero (prior mean)"].mean() - 4.01) < 0.3


def test_bad_task_sizes_name_the_problem():
    for field in ("D", "n_bases", "rank"):
        with pytest.raises(ValueError, match=f"{field} must be a positive integer, got 0"):
            TaskConfig(**{field: 0})
    with pytest.raises(ValueError, match="K .examples per sequence. must be >= 1"):
        TaskConfig(K=0)


def test_lasso_bad_input_and_sweep_cap():
    from sklearn.exceptions import ConvergenceWarning

    cfg = TaskConfig(K=6)
    b = sample_batch(cfg, 4, generator=torch.Generator().manual_seed(0))
    xs, ys = b.xs.double(), b.ys.double()
    with pytest.raises(ValueError, match="alpha is an empty list"):
        bl.lasso(xs, ys, [])
    bad = xs.clone()
    bad[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"xs contains NaN or inf in 1 of 4 sequences"):
        bl.lasso(bad, ys, 0.1)
    with pytest.raises(ValueError, match=r"ys contains NaN or inf"):
        bl.lasso(xs, ys.masked_fill(ys > 0, float("inf")), [0.1])
    with pytest.raises(ValueError, match="NaN or inf"):
        bl.lasso_fit(bad, ys, 0.1)
    # one sweep cannot converge a weakly regularised fit: the solver says so
    with pytest.warns(ConvergenceWarning, match="max_sweeps=1 .* not converged"):
        bl.lasso(xs, ys, 0.001, max_sweeps=1)
    with pytest.warns(ConvergenceWarning, match="max_sweeps=1"):
        bl.lasso_fit(xs, ys, 0.001, max_sweeps=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # a converged fit stays silent
        bl.lasso(xs, ys, 0.1, max_sweeps=5000, tol=1e-6)
    # the oracle baseline caps its sweeps on purpose and reports the share it cut short
    df = bl.baseline_curves(cfg, n_seqs=8, lasso_alphas=(0.001,), ridge_alphas=(0.1,), lasso_sweeps=1)
    assert 0 < df.attrs["lasso_unconverged_frac"] <= 1
