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

    with pytest.raises(AssertionError):
        ex.check_knn(self_included)


def test_check_basis_least_squares():
    ex.check_basis_least_squares(basis_least_squares)
    with pytest.raises(AssertionError):
        ex.check_basis_least_squares(lambda xs, ys, mask: basis_least_squares(xs, ys, mask, alpha=1.0))


def test_check_patch_hook():
    def good(mean, positions):
        def hook(act, hook):
            act[:, positions] = mean[positions]
            return act
        return hook

    ex.check_patch_hook(good)

    def everywhere(mean, positions):
        return lambda act, hook: mean.expand_as(act).clone()

    with pytest.raises(AssertionError):
        ex.check_patch_hook(everywhere)
