"""The chapter-6 check functions accept correct answers and reject typical mistakes."""

from __future__ import annotations

import pytest
import torch

from llmfeatures.icl import exercises as ex
from llmfeatures.icl.baselines import basis_least_squares
from llmfeatures.icl.decodability import knn_predict


def test_check_knn():
    ex.check_knn(knn_predict)

    def self_included(reps, labels, k):  # forgets leave-one-out
        d = torch.cdist(reps, reps)
        idx = d.topk(k, largest=False).indices
        return labels[idx].mode(1).values

    with pytest.raises(AssertionError, match="predictions differ"):
        ex.check_knn(self_included)
    with pytest.raises(AssertionError, match="predictions differ"):  # one neighbour too many
        ex.check_knn(lambda reps, labels, k: knn_predict(reps, labels, k + 1))
    with pytest.raises(AssertionError, match="expected shape"):
        ex.check_knn(lambda reps, labels, k: knn_predict(reps, labels, k)[:-1])


def test_check_basis_least_squares():
    ex.check_basis_least_squares(basis_least_squares)
    with pytest.raises(AssertionError, match="predictions differ"):  # ridge, not least squares
        ex.check_basis_least_squares(lambda xs, ys, mask: basis_least_squares(xs, ys, mask, alpha=1.0))
    with pytest.raises(AssertionError, match="predictions differ"):  # ignores the basis
        ex.check_basis_least_squares(lambda xs, ys, mask: basis_least_squares(
            xs, ys, torch.ones_like(mask)))

    def peeks(xs, ys, mask):  # fits on the pair it predicts as well
        out = basis_least_squares(xs, ys, mask)
        out[:, :-1] = out[:, 1:].clone()
        return out

    with pytest.raises(AssertionError, match="predictions differ"):
        ex.check_basis_least_squares(peeks)


def test_check_patch_hook():
    def good(mean, positions):
        def hook(act, hook):
            act[:, positions] = mean[positions]
            return act
        return hook

    ex.check_patch_hook(good)

    def everywhere(mean, positions):
        return lambda act, hook: mean.expand_as(act).clone()

    with pytest.raises(AssertionError, match="outside `positions`"):
        ex.check_patch_hook(everywhere)

    def forgets_to_return(mean, positions):
        def hook(act, hook):
            act[:, positions] = mean[positions]
        return hook

    with pytest.raises(AssertionError, match="must return"):
        ex.check_patch_hook(forgets_to_return)

    def adds(mean, positions):
        def hook(act, hook):
            act[:, positions] += mean[positions]
            return act
        return hook

    with pytest.raises(AssertionError, match="patched positions wrong"):
        ex.check_patch_hook(adds)
