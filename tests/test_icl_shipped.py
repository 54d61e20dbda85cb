"""Skewed concept frequencies and the ICL run shipped as package data (chapter 6)."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from llmfeatures.cache import CacheCorruptError
from llmfeatures.icl import train as T
from llmfeatures.icl.model import ICLModelConfig
from llmfeatures.icl.tasks import TaskConfig, sample_batch

warnings.filterwarnings("ignore", category=DeprecationWarning)


def test_basis_probs_set_training_frequencies_and_are_validated():
    task = TaskConfig(D=8, n_bases=4, rank=2, K=6, basis_probs=(0.7, 0.1, 0.1, 0.1))
    b = sample_batch(task, 4000, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(b.basis, minlength=4).float() / 4000
    assert abs(freq[0] - 0.7) < 0.03 and (freq[1:] - 0.1).abs().max() < 0.03
    # each sequence's weights live on its own basis
    mask = task.mask()[b.basis]
    assert torch.all(b.w[~mask] == 0)
    # an explicit basis still wins over the probabilities
    assert torch.all(sample_batch(task, 50, basis=3).basis == 3)
    for bad in ((0.5, 0.5), (0.7, 0.1, 0.1, 0.2), (1.0, 0.0, 0.0, 0.0), (-0.1, 0.5, 0.3, 0.3)):
        with pytest.raises(ValueError, match="basis_probs"):
            TaskConfig(D=8, n_bases=4, rank=2, basis_probs=bad)


def _tiny_config() -> T.ICLTrainConfig:
    task = TaskConfig(D=8, n_bases=4, rank=2, K=4, basis_probs=(0.4, 0.3, 0.2, 0.1))
    return T.ICLTrainConfig(task=task, model=ICLModelConfig(n_layers=2, d_model=16, n_heads=2),
                            batch_size=16, n_steps=12, lr=3e-3, n_checkpoints=4, eval_per_basis=8,
                            cd_per_concept=12)


@pytest.mark.slow
def test_exported_run_loads_verifies_and_rejects_tampering(tmp_path, monkeypatch):
    cfg = _tiny_config()
    monkeypatch.setitem(T.TRAIN_PRESETS, "ci", cfg)
    run = T.trained_run("ci", progress=False, shipped=False)
    keep = [run.steps[0], run.steps[-1]]
    folder = T.export_shipped(run, tmp_path / "book_run", keep, "pytest")
    manifest = json.loads((folder / T.SHIPPED_MANIFEST).read_text())
    assert manifest["command"] == "pytest" and manifest["seed"] == cfg.seed
    assert sorted(manifest["sha256"]) == sorted(
        ["history.csv", "cd.csv", "baselines.csv"] + [f"checkpoints/step_{s:06d}.pt" for s in keep])
    # loading: the same configuration, tables and weights
    monkeypatch.setitem(T.SHIPPED_RUNS, "ci", "book_run")
    shipped = T.shipped_run("ci", root=tmp_path)
    assert shipped is not None and shipped.config == cfg and shipped.steps == keep
    assert shipped.metrics["shipped"] is True
    assert shipped.history.equals(run.history)
    b = sample_batch(cfg.task, 5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(shipped.load_model().predict(b.xs, b.ys), run.load_model().predict(b.xs, b.ys))
    # trained_run prefers the shipped copy when its configuration matches
    monkeypatch.setattr(T, "SHIPPED_ROOT", tmp_path)
    assert T.trained_run("ci", progress=False).path == folder
    # ... and trains (or loads its cache) when it does not
    assert T.trained_run("ci", progress=False, seed=1).path != folder
    # weights that were not kept cannot be exported
    with pytest.raises(ValueError, match="no weights"):
        T.export_shipped(shipped, tmp_path / "again", [run.steps[1]], "pytest")
    # one altered byte is caught, with the file and the fix named
    cd = folder / "cd.csv"
    cd.write_text(cd.read_text().replace("0.", "1.", 1))
    with pytest.raises(CacheCorruptError, match=r"cd\.csv.*altered.*retrain"):
        T.shipped_run("ci", root=tmp_path)
    (folder / f"checkpoints/step_{keep[-1]:06d}.pt").unlink()
    (folder / "cd.csv").write_text(run.cd.to_csv(index=False))
    with pytest.raises(CacheCorruptError, match="missing|altered"):
        T.verify_shipped(folder)


def test_shipped_book_run_matches_its_checksums_and_the_book_preset():
    folder = T.SHIPPED_ROOT / T.SHIPPED_RUNS["book"]
    manifest = T.verify_shipped(folder)  # raises on any altered or missing file
    assert T._config_from_dict(manifest["config"]) == T.run_config("book"), (
        "the shipped book run no longer matches the book preset: retrain it with "
        f"`{T.RETRAIN_COMMAND}`")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 10 * 2**20, f"shipped run is {size / 2**20:.1f} MB (limit 10 MB)"
    run = T.shipped_run("book")
    assert run is not None and run.steps[0] == 0 and run.steps[-1] == run.config.n_steps


def test_cpu_task_needs_the_concept_at_the_end_of_the_context():
    from llmfeatures.icl.baselines import baseline_curves
    from llmfeatures.icl.tasks import CPU_TASK

    def end_errors(task):
        bl = baseline_curves(task, n_seqs=300, lasso_alphas=(0.01, 0.03, 0.1), ridge_alphas=(0.1, 1.0))
        v = bl[bl.n_examples == task.K - 1].set_index("method").mse
        agnostic = min(v[m] for m in v.index if m.startswith(("LASSO", "ridge")))
        return agnostic, v["least squares on true basis"]

    agnostic, basis_ls = end_errors(CPU_TASK)
    # with the full context a concept-agnostic method is still several times worse than least
    # squares on the true basis, so a model can only get close by inferring the concept
    assert agnostic > 3 * basis_ls, (agnostic, basis_ls)
    # the check is not vacuous: with the paper's 20 pairs on the same small task it fails
    agnostic20, basis_ls20 = end_errors(TaskConfig(D=4, n_bases=2, rank=2, K=20))
    assert agnostic20 < 3 * basis_ls20, (agnostic20, basis_ls20)


def test_shipped_weight_steps_keep_the_first_and_the_last_checkpoints():
    steps = [0, 1, 3, 10, 30, 100, 300, 1000]
    assert T.shipped_weight_steps(steps) == [0, 100, 300, 1000]
    assert T.shipped_weight_steps(steps, 2) == [0, 1000]
    assert T.shipped_weight_steps([0, 5], 4) == [0, 5]
    with pytest.raises(ValueError, match="n_weights"):
        T.shipped_weight_steps(steps, 1)
