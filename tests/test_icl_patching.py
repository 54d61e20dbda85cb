"""The causal check on a model whose answer to "which concept steers the prediction?" is known.

The model is an :class:`~llmfeatures.icl.model.ICLTransformer` whose blocks are all zero (each
block passes the residual stream through unchanged) with two fixed hooks planted in it:

* an *encoder* on the embeddings infers the concept of each sequence from the pairs before every
  x token (the basis whose dimensions carry the most correlation between x and y) and writes it
  as a one-hot code into spare residual dimensions;
* a *decoder* on ``blocks.1.hook_resid_pre``, i.e. after layer 0, reads that code and predicts
  ``y`` by least squares on the basis the code names, which is what the read-out returns.

So the concept is encoded by layer 0 and used after it: patching the own concept's mean at
layer 0 leaves the prediction as good as it was, another concept's mean makes it regress on the
wrong dimensions, and patching layer 1, after the decoder has run, changes nothing.
"""

from __future__ import annotations

import pytest
import torch
from transformer_lens import HookedTransformerConfig

from llmfeatures.icl.model import ICLTransformer
from llmfeatures.icl.patching import patching_matrix
from llmfeatures.icl.tasks import TaskConfig

TASK = TaskConfig(K=16, noise_std=0.1)
N = 60  # sequences per concept


def _planted_model(task: TaskConfig) -> ICLTransformer:
    D, C, K = task.D, task.n_bases, task.K
    d_model = D + 1 + C
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=d_model, n_heads=1, d_head=4, d_mlp=4, n_ctx=2 * K, d_vocab=1,
        d_vocab_out=1, act_fn="relu", normalization_type=None, device="cpu", seed=0,
    )
    model = ICLTransformer(cfg, d_input=D + 1, token_format="paper")
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.read_in.weight[: D + 1, : D + 1] = torch.eye(D + 1)  # tokens copied as they are
        model.W_U[0, 0] = 1.0  # the read-out is residual dimension 0
    xpos = torch.arange(0, 2 * K, 2)

    def pairs(act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return act[:, 0::2, :D], act[:, 1::2, D]  # x (B, K, D) and y (B, K)

    dims = torch.tensor(task.bases)  # (C, rank)

    def fit_predict(xs: torch.Tensor, ys: torch.Tensor, i: int, basis: torch.Tensor) -> torch.Tensor:
        """Least squares of y on the dimensions of ``basis`` (B,) from the first ``i`` pairs,
        evaluated at pairs ``0..i`` (the last one is the query): ``(B, i + 1)``."""
        idx = dims[basis][:, None, :].expand(-1, i + 1, -1)
        X = xs[:, : i + 1].gather(2, idx)  # (B, i + 1, rank)
        A, y = X[:, :i], ys[:, :i, None]
        # minimum-norm least squares: with fewer pairs than dimensions (i < rank) A^T A is
        # singular, and a tiny ridge (1e-9) is below float32's resolution on some builds
        w = torch.linalg.pinv(A) @ y
        return (X @ w).squeeze(-1)

    def encode(act: torch.Tensor, hook=None) -> torch.Tensor:
        xs, ys = pairs(act)
        code = torch.zeros(len(act), K, C)
        for i in range(1, K):  # the basis whose least-squares fit leaves the smallest residual
            rss = torch.stack([
                (fit_predict(xs, ys, i, torch.full((len(act),), k))[:, :i] - ys[:, :i]).pow(2).sum(-1)
                for k in range(C)
            ], -1)
            code[:, i] = torch.nn.functional.one_hot(rss.argmin(-1), C).to(code.dtype)
        act[:, xpos, D + 1 :] = 10 * code.to(act.dtype)  # a strong code: it dominates the means
        return act

    def decode(act: torch.Tensor, hook=None) -> torch.Tensor:
        xs, ys = pairs(act)
        basis = act[:, xpos, D + 1 :].argmax(-1)  # (B, K): the concept the code names
        pred = torch.zeros_like(ys)
        for i in range(1, K):
            pred[:, i] = fit_predict(xs, ys, i, basis[:, i])[:, i]
        act = act.clone()
        act[:, xpos, 0] = pred
        return act

    model.add_hook("hook_embed", encode, is_permanent=True)
    model.add_hook("blocks.1.hook_resid_pre", decode, is_permanent=True)
    return model.eval()


@pytest.fixture(scope="module")
def planted():
    return _planted_model(TASK)


@pytest.fixture(scope="module")
def early(planted):
    """Patching at layer 0, between the encoder and the decoder."""
    return patching_matrix(planted, TASK, layer=0, n_per_concept=N)


def test_own_concept_mean_costs_less_than_another(early):
    pr = early
    assert (pr.clean < 0.1).all(), pr.clean  # the planted model regresses on the right basis
    C = TASK.n_bases
    off = ~torch.eye(C, dtype=torch.bool)
    # another concept's mean makes it regress on the wrong 4 of 16 dimensions: error ~ rank
    assert pr.delta[off].min() > 1.0, pr.delta
    # its own concept's mean leaves the code, hence the prediction, as it was
    assert pr.delta.diagonal().abs().max() < 0.05, pr.delta.diagonal()
    assert pr.other_concept > 20 * max(pr.same_concept, 0.01)
    assert pr.ratio > 2


def test_full_replacement_erases_the_query_too(planted):
    full = patching_matrix(planted, TASK, layer=0, n_per_concept=N, mode="full")
    # the whole vector is the mean: the query x is gone, so even the own concept's mean hurts
    assert full.delta.diagonal().min() > 1.0, full.delta


def test_patching_after_the_decoder_barely_matters(planted, early):
    # layer 1 is blocks.1.hook_resid_post, after the decoder on blocks.1.hook_resid_pre: moving
    # the code there changes nothing; only the small share of the prediction itself that lies in
    # the concept subspace moves
    late = patching_matrix(planted, TASK, layer=1, n_per_concept=N)
    off = ~torch.eye(TASK.n_bases, dtype=torch.bool)
    assert late.delta.abs().max() < 0.1 * early.delta[off].min(), (late.delta, early.delta)


def test_bad_patching_arguments_name_the_problem(planted):
    with pytest.raises(ValueError, match="examples is empty"):
        patching_matrix(planted, TASK, layer=0, examples=[])
    with pytest.raises(ValueError, match=r"valid layers are -1\.\.1"):
        patching_matrix(planted, TASK, layer=2)
    with pytest.raises(ValueError, match="1-based pair indices"):
        patching_matrix(planted, TASK, layer=0, examples=[0, 3])
