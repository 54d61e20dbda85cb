"""Chapter 6 acceptance figures: train (or load) the ICL run at the current scale and print them.

Usage: ``LLMFEATURES_SCALE=book python benchmarks/icl_train.py [--threads N] [--no-shipped]``;
``--retrain-shipped`` retrains the run shipped with the package (the book loads it by default).  Prints the
training time, the error with K examples against the baselines (and per basis), CD at the best
layer at the first and last checkpoint (and per concept), whether CD rises as the loss falls, and
the patching ratio (concept-subspace patching; full replacement as ``*_full``).  Layer ``L`` is
``blocks.L.hook_resid_post`` and ``-1`` the embeddings, as everywhere in the package.
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import torch

from llmfeatures.config import get_scale
from llmfeatures.icl.patching import patching_matrix
from llmfeatures.icl.train import concept_onsets, retrain_shipped, trained_run
from llmfeatures.loaders import resid_hook


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--variant", default=None, help="a TaskConfig.variant name (default: the preset's task)")
    ap.add_argument("--scale", default=None, help="ci, book, gpu or paper (default: $LLMFEATURES_SCALE)")
    ap.add_argument("--no-shipped", action="store_true",
                    help="train (or load from the cache) instead of loading the run shipped with the package")
    ap.add_argument("--retrain-shipped", action="store_true",
                    help="retrain the shipped run of --scale from scratch and write it into the package data")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.retrain_shipped:
        print("wrote", retrain_shipped(get_scale(args.scale)))
    run = trained_run(args.scale, variant=args.variant, shipped=not args.no_shipped)
    m = dict(run.metrics)
    mean_cd = run.cd[run.cd.concept == "mean"].groupby("step").cd.max()
    loss = run.history.groupby("step").mse.mean()
    m["spearman_cd_vs_neg_loss"] = float(mean_cd.corr(-loss, method="spearman"))
    model = run.load_model()
    for mode in ("concept", "full"):
        pr = patching_matrix(model, run.config.task, layer=m["cd_best_layer_index"], mode=mode)
        suffix = "" if mode == "concept" else "_full"
        m.update({f"patch_same{suffix}": pr.same_concept, f"patch_other{suffix}": pr.other_concept,
                  f"patch_ratio{suffix}": pr.ratio})
    m["cd_best_layer_hook"] = resid_hook(m["cd_best_layer_index"])
    m["scale"] = get_scale()
    m["cache"] = str(run.path)
    print(json.dumps(m, indent=2))
    last = run.history[(run.history.step == run.steps[-1]) & (run.history.n_examples == run.config.task.K - 1)]
    print("final error with K examples per basis:", last.set_index("basis").mse.round(3).to_dict())
    cd_last = run.cd[(run.cd.step == run.steps[-1]) & (run.cd.layer == m["cd_best_layer_index"])]
    print("final CD per concept at the best layer:", cd_last.set_index("concept").cd.round(2).to_dict())
    print("mean CD at best layer by step:", mean_cd.round(3).to_dict())
    print("mean loss by step:", loss.round(3).to_dict())
    agnostic = min(m["lasso_mse_at_K"], m["ridge_mse_at_K"])
    on = concept_onsets(run.history, run.cd, m["cd_best_layer_index"], run.config.task.K - 1,
                        agnostic=agnostic)
    print("per-concept onsets (half of the error's log-fall; error below the best concept-agnostic "
          f"baseline {agnostic:.3f}; CD rise):")
    print(on.to_string(index=False))
    final, optimum = m["final_mse_at_K"], m["basis_ls_mse_at_K"]
    bars = {
        "CD at the best layer <= 0.6 at the first checkpoint": m["cd_best_layer_first"] <= 0.6,
        "CD at the best layer >= 0.9 at the end": m["cd_best_layer_final"] >= 0.9,
        # the part of the fall that needs the concept: below what no concept-agnostic method reaches
        "each concept's error goes below the agnostic baseline with its CD rise (<= 1 checkpoint)":
            bool(on.together_agnostic.all()),
        "patching another concept >= 2x the same concept": m["patch_ratio"] >= 2,
        "final error below the best concept-agnostic baseline": final < agnostic,
        # on a log scale, nearer the basis-restricted optimum than the agnostic baseline
        "final error nearer the basis optimum than the agnostic baseline":
            np.log(final / optimum) < np.log(agnostic / final),
    }
    for name, ok in bars.items():
        print(f"{'PASS' if ok else 'MISS'}  {name}")
    if not all(bars.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
