"""Exact reference predictors for the sparse-regression mixture, as a function of context length.

For a sequence ``(x_1, y_1), ..., (x_K, y_K)`` every predictor here guesses ``y_{n+1}`` from the
first ``n`` pairs, for ``n = 0, ..., K-1`` -- the same thing the transformer is asked to do at
each x token.  All of them are vectorised over sequences (torch, any device):

* :func:`basis_least_squares` -- least squares restricted to the true basis (minimum-norm while
  ``n < rank``): the optimum when the concept is *known*;
* :func:`bayes_mixture` -- the Bayes-optimal predictor when the concept is *unknown*: the posterior
  mean under the task's own prior (a posterior-weighted mix of per-basis ridge fits);
* :func:`ridge` and :func:`lasso` -- regression over all ``D`` dimensions that ignores the
  concept structure (LASSO exploits sparsity, ridge does not);
* :func:`one_step_gd` -- a single gradient-descent step from ``w = 0`` with the best step size,
  on the true basis or on all ``D`` dimensions: the simple algorithm one attention layer can run
  (von Oswald et al., 2023), with no matrix inverse; small, briefly trained models stop near it;
* :func:`baseline_curves` -- the mean squared error of each of them by ``n``, as a DataFrame.

Prediction for ``n = 0`` is always 0 (the prior mean).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning

from llmfeatures.icl.tasks import TaskConfig, sample_batch


def _check(xs: torch.Tensor, ys: torch.Tensor) -> None:
    if xs.ndim != 3 or ys.ndim != 2 or xs.shape[:2] != ys.shape:
        raise ValueError(
            f"expected xs of shape (B, K, D) and ys of shape (B, K); got {tuple(xs.shape)} "
            f"and {tuple(ys.shape)}"
        )
    for name, t in (("xs", xs), ("ys", ys)):
        if not torch.isfinite(t).all():
            n_bad = int((~torch.isfinite(t)).reshape(len(t), -1).any(1).sum())
            raise ValueError(
                f"{name} contains NaN or inf in {n_bad} of {len(t)} sequences; every fit would "
                "return NaN. Drop those sequences or fix how the data was made."
            )


def _check_mask(xs: torch.Tensor, ys: torch.Tensor, mask: torch.Tensor) -> int:
    """Validate ``xs (B, K, D)``, ``ys (B, K)`` and a ``(B, D)`` bool basis mask whose rows all
    have the same number of dimensions; return that number."""
    _check(xs, ys)
    if mask.shape != (xs.shape[0], xs.shape[2]) or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor of shape {(xs.shape[0], xs.shape[2])}")
    dims = mask.sum(-1)
    if (dims != dims[0]).any():
        raise ValueError("all bases in a batch must have the same rank")
    return int(dims[0])


def _min_norm_fit(X: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """Ridge / minimum-norm least squares in dual form: ``w = X^T (X X^T + alpha I)^+ y``.

    X: ``(B, n, d)``, y: ``(B, n)`` -> w: ``(B, d)``.  With ``alpha = 0`` this is the
    minimum-norm least-squares solution (pseudo-inverse), exact also when ``n < d``.
    """
    if alpha == 0:
        return (torch.linalg.pinv(X) @ y.unsqueeze(-1)).squeeze(-1)
    n = X.shape[1]
    gram = X @ X.transpose(1, 2) + alpha * torch.eye(n, dtype=X.dtype, device=X.device)
    return (X.transpose(1, 2) @ torch.linalg.solve(gram, y.unsqueeze(-1))).squeeze(-1)


def _prefix_predict(xs: torch.Tensor, ys: torch.Tensor, fit) -> torch.Tensor:
    """Apply ``fit(X_prefix (B,n,d), y_prefix (B,n)) -> w (B,d)`` for every prefix; ``(B, K)``."""
    _check(xs, ys)
    preds = torch.zeros_like(ys)
    for n in range(1, xs.shape[1]):
        w = fit(xs[:, :n], ys[:, :n])
        preds[:, n] = (w * xs[:, n]).sum(-1)
    return preds


def basis_least_squares(
    xs: torch.Tensor, ys: torch.Tensor, mask: torch.Tensor, alpha: float = 0.0
) -> torch.Tensor:
    """Least squares on the dimensions of each sequence's true basis.

    xs: ``(B, K, D)``; ys: ``(B, K)``; mask: ``(B, D)`` bool, the basis of each sequence (all
    bases must have the same rank).  ``alpha > 0`` gives ridge instead.  Returns ``(B, K)``:
    entry ``n`` predicts ``y_{n+1}`` from the first ``n`` pairs.
    """
    rank = _check_mask(xs, ys, mask)
    idx = mask.float().argsort(dim=-1, descending=True, stable=True)[:, :rank]
    xr = xs.gather(2, idx.unsqueeze(1).expand(-1, xs.shape[1], -1))  # (B, K, r)
    return _prefix_predict(xr, ys, lambda X, y: _min_norm_fit(X, y, alpha))


def ridge(xs: torch.Tensor, ys: torch.Tensor, alpha: float) -> torch.Tensor:
    """Ridge regression over all D dimensions (``min ||y - Xw||^2 + alpha ||w||^2``, no intercept,
    as ``sklearn.linear_model.Ridge(fit_intercept=False)``).  Shapes as :func:`basis_least_squares`."""
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    return _prefix_predict(xs, ys, lambda X, y: _min_norm_fit(X, y, alpha))


def one_step_gd_rate(n: int | torch.Tensor, n_dims: int, rank: int, noise_std: float) -> float | torch.Tensor:
    """The best step size of :func:`one_step_gd` after ``n`` examples.

    With ``m = n_dims`` dimensions updated, ``w ~ N(0, I)`` on ``rank`` of them and standard
    normal x, the prediction ``eta x_q . c`` with ``c = X^T y / n`` has expected squared error
    ``rank (eta-1)^2 + eta^2 (rank (m+1) + m s^2) / n + s^2``.  It is smallest at
    ``eta = n / (n + m + 1 + m s^2 / rank)``, where it equals ``rank (1 - eta) + s^2``.
    """
    return n / (n + n_dims + 1 + n_dims * noise_std**2 / rank)


def one_step_gd(
    xs: torch.Tensor, ys: torch.Tensor, rank: int, noise_std: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """One gradient step on the squared loss from ``w = 0``, with the best step size.

    The step from ``w = 0`` is ``eta * X^T y / n`` (the correlations of y with each input
    dimension), with the best ``eta`` for each ``n`` (:func:`one_step_gd_rate`; ``rank`` is the
    number of nonzero weights).  With ``mask`` (``(B, D)`` bool, each sequence's true basis) only
    the basis dimensions are updated: the algorithm knows the concept; without it, all ``D`` are.
    xs: ``(B, K, D)``; ys: ``(B, K)``.  Returns ``(B, K)`` predictions as :func:`basis_least_squares`.
    """
    _check(xs, ys)
    if mask is None:
        mask = torch.ones(xs.shape[0], xs.shape[2], dtype=torch.bool, device=xs.device)
    n_dims = _check_mask(xs, ys, mask)
    xm = xs * mask[:, None, :]
    c = (xm * ys[..., None]).cumsum(1)  # (B, K, D): sum over the first n+1 pairs at index n
    n = torch.arange(1, xs.shape[1], dtype=xs.dtype, device=xs.device)
    eta = one_step_gd_rate(n, n_dims, rank, noise_std) / n  # (K-1,)
    preds = torch.zeros_like(ys)
    preds[:, 1:] = eta * (c[:, :-1] * xm[:, 1:]).sum(-1)
    return preds


def _cd_lasso(
    G: torch.Tensor, c: torch.Tensor, alpha: torch.Tensor, max_sweeps: int, tol: float
) -> tuple[torch.Tensor, int]:
    """Coordinate descent on ``min 1/2 w^T G w - c^T w + alpha ||w||_1`` for many problems.

    G: ``(P, d, d)`` symmetric, c: ``(P, d)``, alpha: ``(P,)`` -> w: ``(P, d)`` and the number
    of problems still unconverged after ``max_sweeps`` sweeps.  Each sweep
    updates every coordinate of every still-active problem at once; a problem is finished once no
    coordinate moved by more than ``tol`` in a sweep.  (The same algorithm as sklearn's ``Lasso``
    with a precomputed Gram matrix, run on a whole batch.)  The problems are stored along the last
    axis so that every coordinate update reads contiguous memory; finished problems are dropped
    from the batch once they are a quarter of it (until then they keep being refined).
    """
    P, d = c.shape
    w = torch.zeros_like(c)
    Ga = G.permute(1, 2, 0).contiguous()  # (d, d, P): Ga[j] is row j of every problem
    ca, wa, aa = c.T.contiguous(), torch.zeros_like(c.T).contiguous(), alpha.clone()
    da = torch.diagonal(Ga).T.contiguous()  # (d, P)
    safe = da.clamp_min(1e-300)
    r = torch.zeros_like(ca)  # G @ w of the active problems, (d, P)
    active = torch.arange(P, device=c.device)
    done = torch.zeros(P, dtype=torch.bool, device=c.device)  # per active problem
    converged = False
    for _ in range(max_sweeps):
        moved = torch.zeros_like(aa)
        for j in range(d):
            old = wa[j].clone()
            rho = ca[j] - r[j] + da[j] * old
            new = torch.sign(rho) * (rho.abs() - aa).clamp_min(0) / safe[j]
            new = torch.where(da[j] > 0, new, torch.zeros_like(new))
            delta = new - old
            wa[j] = new
            r += Ga[j] * delta
            torch.maximum(moved, delta.abs(), out=moved)
        done = moved <= tol
        n_done = int(done.sum())
        if n_done == active.numel():
            converged = True
            break
        if n_done * 4 >= active.numel():
            w[active[done]] = wa[:, done].T
            keep = ~done
            active, aa = active[keep], aa[keep]
            Ga, ca, wa, da, safe, r = (t[..., keep].contiguous() for t in (Ga, ca, wa, da, safe, r))
            done = done[keep]
    n_left = 0 if converged else int((~done).sum())
    w[active] = wa.T
    return w, n_left


def _warn_cap(n_left: int, n_problems: int, max_sweeps: int, tol: float) -> None:
    """The warning for problems that reached the sweep cap before converging."""
    if n_left:
        warnings.warn(
            f"LASSO coordinate descent stopped at its cap of max_sweeps={max_sweeps} with "
            f"{n_left} of {n_problems} problems not converged (a coordinate still moved by more "
            f"than tol={tol:g}); raise max_sweeps or tol, or use a larger alpha.",
            ConvergenceWarning,
            stacklevel=3,
        )


def lasso_fit(
    X: torch.Tensor, y: torch.Tensor, alpha: float, max_sweeps: int = 2000, tol: float = 1e-9
) -> torch.Tensor:
    """Batched LASSO: ``min (1/2n) ||y - Xw||^2 + alpha ||w||_1`` (sklearn's objective, no
    intercept).  X: ``(B, n, d)``, y: ``(B, n)`` -> w: ``(B, d)``.  Warns
    (``sklearn.exceptions.ConvergenceWarning``) if ``max_sweeps`` is reached before ``tol``."""
    _check(X, y)
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0 for LASSO (use ridge(alpha=0) for least squares), got {alpha}")
    n = X.shape[1]
    G = X.transpose(1, 2) @ X / n
    c = (X.transpose(1, 2) @ y.unsqueeze(-1)).squeeze(-1) / n
    w, n_left = _cd_lasso(G, c, torch.full_like(c[:, 0], alpha), max_sweeps, tol)
    _warn_cap(n_left, len(w), max_sweeps, tol)
    return w


def lasso(
    xs: torch.Tensor,
    ys: torch.Tensor,
    alpha: float | Sequence[float],
    max_sweeps: int = 2000,
    tol: float = 1e-9,
) -> torch.Tensor:
    """LASSO over all D dimensions for every prefix at once (see :func:`lasso_fit`).

    Returns ``(B, K)``, or ``(len(alpha), B, K)`` when ``alpha`` is a sequence: all prefixes and
    all regularisation strengths are solved as one batch of problems.  Warns
    (``sklearn.exceptions.ConvergenceWarning``) if ``max_sweeps`` is reached before ``tol``.
    """
    alphas = [alpha] if isinstance(alpha, (int, float)) else list(alpha)
    preds, n_left, n_problems = _lasso_prefixes(xs, ys, alphas, max_sweeps, tol)
    _warn_cap(n_left, n_problems, max_sweeps, tol)
    return preds[0] if isinstance(alpha, (int, float)) else preds


def _lasso_prefixes(
    xs: torch.Tensor, ys: torch.Tensor, alphas: list[float], max_sweeps: int, tol: float
) -> tuple[torch.Tensor, int, int]:
    """:func:`lasso` for a list of strengths: predictions ``(A, B, K)``, the number of problems
    left unconverged at the sweep cap and the number of problems."""
    _check(xs, ys)
    if not alphas:
        raise ValueError(
            "alpha is an empty list: LASSO needs at least one regularisation strength, "
            "e.g. alpha=0.01 or alpha=[0.003, 0.01, 0.03]"
        )
    if min(alphas) <= 0:
        raise ValueError(f"alpha must be > 0 for LASSO (use ridge(alpha=0) for least squares), got {alphas}")
    B, K, D = xs.shape
    # Gram matrices and correlations of every prefix from cumulative sums: (B, K-1, D, D)
    outer = torch.einsum("bki,bkj->bkij", xs[:, :-1], xs[:, :-1]).cumsum(1)
    xy = (xs[:, :-1] * ys[:, :-1, None]).cumsum(1)
    n = torch.arange(1, K, dtype=xs.dtype, device=xs.device)
    G = (outer / n[None, :, None, None]).reshape(-1, D, D)
    c = (xy / n[None, :, None]).reshape(-1, D)
    A = len(alphas)
    a = torch.tensor(alphas, dtype=xs.dtype, device=xs.device).repeat_interleave(G.shape[0])
    w, n_left = _cd_lasso(G.repeat(A, 1, 1), c.repeat(A, 1), a, max_sweeps, tol)
    w = w.reshape(A, B, K - 1, D)
    preds = torch.zeros(A, B, K, dtype=xs.dtype, device=xs.device)
    preds[:, :, 1:] = (w * xs[None, :, 1:]).sum(-1)
    return preds, n_left, A * G.shape[0]


def bayes_mixture(
    xs: torch.Tensor, ys: torch.Tensor, basis_mask: torch.Tensor, noise_std: float
) -> torch.Tensor:
    """Posterior-mean prediction under the task prior when the basis is unknown.

    basis_mask: ``(n_bases, D)`` bool, all bases of the task (uniform prior over them);
    ``w ~ N(0, I)`` on the basis dimensions; noise variance ``noise_std**2`` (must be > 0).
    For each basis the evidence is ``N(y_{1:n}; 0, X_k X_k^T + s^2 I)`` and its prediction is the
    ridge fit with ``alpha = s^2``; the output mixes them by posterior weight.  ``(B, K)``.
    """
    _check(xs, ys)
    if noise_std <= 0:
        raise ValueError("bayes_mixture needs noise_std > 0 (the posterior is singular otherwise)")
    s2 = noise_std**2
    B, K, _ = xs.shape
    preds = torch.zeros_like(ys)
    for n in range(1, K):
        X, y, xq = xs[:, :n], ys[:, :n], xs[:, n]
        logps, means = [], []
        for m in basis_mask:
            Xk = X * m  # zero the dimensions outside basis k
            cov = Xk @ Xk.transpose(1, 2) + s2 * torch.eye(n, dtype=xs.dtype, device=xs.device)
            chol = torch.linalg.cholesky(cov)
            alpha_vec = torch.cholesky_solve(y.unsqueeze(-1), chol)  # (B, n, 1)
            logdet = 2 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(-1)
            logps.append(-0.5 * (y.unsqueeze(1) @ alpha_vec).squeeze((1, 2)) - 0.5 * logdet)
            w = (Xk.transpose(1, 2) @ alpha_vec).squeeze(-1)
            means.append((w * (xq * m)).sum(-1))
        post = torch.softmax(torch.stack(logps, -1), -1)  # (B, n_bases)
        preds[:, n] = (post * torch.stack(means, -1)).sum(-1)
    return preds


def squared_error_by_n(preds: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Mean over sequences of the squared error at each position: ``(B, K) -> (K,)``."""
    return ((preds - ys) ** 2).mean(0)


def baseline_curves(
    cfg: TaskConfig,
    n_seqs: int = 1000,
    seed: int = 1234,
    lasso_alphas: Sequence[float] = (0.003, 0.01, 0.03, 0.1),
    ridge_alphas: Sequence[float] = (0.01, 0.1, 1.0),
    lasso_sweeps: int = 500,
    device: torch.device | str | None = None,
) -> pd.DataFrame:
    """Error of every baseline against the number of in-context examples, on fresh sequences.

    For LASSO and ridge the best regularisation is chosen separately at each ``n`` (an oracle
    choice, which makes these baselines as strong as they can be).  LASSO runs at most
    ``lasso_sweeps`` coordinate-descent sweeps (tolerance 1e-6 on the weights), enough for these
    errors; the share of fits stopped by that cap (typically the weakest ``alpha`` with fewer
    examples than dimensions) is ``df.attrs["lasso_unconverged_frac"]``, not a warning.  Returns
    a long DataFrame with columns ``method, n_examples, mse`` (``n_examples`` = pairs seen
    before the prediction).
    """
    g = torch.Generator().manual_seed(seed)
    # with skewed training frequencies (cfg.basis_probs), score on every basis equally often,
    # as the model's error curves are
    basis = None if cfg.basis_probs is None else torch.arange(n_seqs) % cfg.n_bases
    b = sample_batch(cfg, n_seqs, generator=g, basis=basis, device=device)
    xs, ys = b.xs.double(), b.ys.double()
    mask = cfg.mask(device=xs.device)
    curves: dict[str, torch.Tensor] = {
        "zero (prior mean)": squared_error_by_n(torch.zeros_like(ys), ys),
        "least squares on true basis": squared_error_by_n(
            basis_least_squares(xs, ys, mask[b.basis]), ys
        ),
        "one GD step on true basis": squared_error_by_n(
            one_step_gd(xs, ys, cfg.rank, cfg.noise_std, mask[b.basis]), ys
        ),
        f"one GD step ({cfg.D} dims)": squared_error_by_n(one_step_gd(xs, ys, cfg.rank, cfg.noise_std), ys),
    }
    if cfg.noise_std > 0:
        curves["Bayes optimal (basis unknown)"] = squared_error_by_n(
            bayes_mixture(xs, ys, mask, cfg.noise_std), ys
        )
    lasso_pred, n_left, n_problems = _lasso_prefixes(xs, ys, list(lasso_alphas), lasso_sweeps, 1e-6)
    lasso_err = ((lasso_pred - ys) ** 2).mean(1)  # (A, K)
    curves[f"LASSO ({cfg.D} dims)"] = lasso_err.min(0).values
    curves[f"ridge ({cfg.D} dims)"] = torch.stack(
        [squared_error_by_n(ridge(xs, ys, a), ys) for a in ridge_alphas]
    ).min(0).values
    rows = [
        {"method": name, "n_examples": n, "mse": float(v)}
        for name, curve in curves.items()
        for n, v in enumerate(curve.cpu())
    ]
    df = pd.DataFrame(rows)
    df.attrs["lasso_unconverged_frac"] = n_left / n_problems
    return df
