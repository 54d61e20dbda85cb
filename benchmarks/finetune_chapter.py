"""Chapter 7 (fine-tuning drift) from cold: time per phase and the headline acceptance figures.

Usage: ``python benchmarks/finetune_chapter.py [ci|book|gpu|paper] [--keep DIR]``

Runs :func:`llmfeatures.finetune.chapter_results` into a temporary ``LLMFEATURES_HOME`` (or
``--keep DIR``) whose ``organism`` folder is a link to the default cache's, so the organism is
reused and never rebuilt (the benchmark stops if it is not built), while the fine-tuning runs,
tuned SAEs, feature-engine passes and analyses are all computed.  It then times what the
notebook loads again after ``chapter_results`` (models, SAEs and the cached engine passes of the
dashboards).  Threads: the chapter's own setting (the organism config's ``cpu_threads``).

Prints the wall and CPU seconds of every phase with the 1-minute load average at its end (another
job on the machine slows the wall time, not the CPU time), the totals, and the headline figures
with their bars.  Exits non-zero when the total wall time exceeds :data:`BUDGET_S` for the scale
or a bar is missed (the figure bars are the issue's ``book``-scale acceptance and are checked at
``book`` only; other scales print them):

- swapped facts learned by the full run (top-1 share of the new answer) >= ``SWAPPED_BAR``;
- recipe learned: the full run's recipe loss at most the organism's own final validation loss;
- drift and decoder change larger for latents tied to the shift than for untouched ones
  (one-sided Mann-Whitney U, p < ``P_BAR``, and a larger median);
- early- vs late-layer tuning on the ICL family: accuracy and CD reported for the three models
  (no direction required; the chapter states it as it comes out).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

BUDGET_S = {"ci": 180, "book": 360}  # the whole of chapter 7's computation, wall seconds
SWAPPED_BAR = 0.8
P_BAR = 0.05


def _link_organism(home: Path, scale: str) -> None:
    """Point ``home/organism`` at the default cache's organism folder (built, never rebuilt)."""
    from llmfeatures.config import cache_home
    from llmfeatures.organism.pipeline import organism_config, organism_dir

    art = organism_dir(scale)
    n_layers = organism_config(scale).model.n_layers
    need = {"tokenizer", "world", "model", *(f"sae_L{L}" for L in range(n_layers))}
    missing = sorted(need - set(art.manifest.get("stages", {})))
    if missing:
        raise SystemExit(f"the {scale} organism is not built in {art.path} (missing stages "
                         f"{', '.join(missing)}); build it first with "
                         f"`LLMFEATURES_SCALE={scale} python -m llmfeatures organism build`.")
    link = home / "organism"
    if not link.exists():
        home.mkdir(parents=True, exist_ok=True)
        link.symlink_to(cache_home() / "organism", target_is_directory=True)


def _notebook_reloads(scale: str) -> float:
    """Wall seconds of what notebook 07 loads again after ``chapter_results`` (all cached)."""
    from llmfeatures.finetune import base_saes, finetune_config, finetuned_model, tuned_saes
    from llmfeatures.finetune.pipeline import analysis_corpus, analysis_stats, base_model
    from llmfeatures.loaders import load_world

    t0 = time.perf_counter()
    cfg = finetune_config(scale)
    world = load_world(scale)
    base = base_model(scale)
    tuned, _ = finetuned_model("full", scale)
    saes = base_saes(base, scale)
    new = tuned_saes(tuned, saes, scale)
    corpus = analysis_corpus(world, base.tokenizer, cfg)
    analysis_stats(base, saes, corpus, scale)
    analysis_stats(tuned, new, corpus, scale)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scale", nargs="?", default=os.environ.get("LLMFEATURES_SCALE", "book"))
    ap.add_argument("--keep", default=None, help="cache folder to compute into (default: temp)")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TQDM_DISABLE", "1")

    # the organism is looked up in the default cache first, then the home is switched
    home = Path(args.keep or tempfile.mkdtemp(prefix="llmfeatures-ch7-")).expanduser()
    _link_organism(home, args.scale)
    os.environ["LLMFEATURES_HOME"] = str(home)

    from llmfeatures.finetune import chapter_results, finetune_config
    from llmfeatures.organism.pipeline import organism_config, organism_dir

    cfg = finetune_config(args.scale)
    print(f"== chapter 7 at scale {args.scale!r} into {home}")
    print(f"  torch threads: {organism_config(args.scale).cpu_threads} (organism cpu_threads); "
          f"load average at the start: {os.getloadavg()}")
    print(f"  config: {cfg}")
    t0, c0 = time.perf_counter(), time.process_time()
    res = chapter_results(args.scale)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    reload_s = _notebook_reloads(args.scale)
    total = wall + reload_s
    print("== phases (wall s, CPU s, 1-min load average at the end of the phase)")
    for row in res["phases"].itertuples():
        print(f"  {row.phase:<18} {row.wall_s:7.1f}  cpu {row.cpu_s:7.1f}  load {row.load_1min:.2f}")
    for name, h in res["histories"].items():
        print(f"    run {name:<10} {h['wall_s']:7.1f}  cpu {h['cpu_s']:7.1f}")
    print(f"  {'chapter_results':<18} {wall:7.1f}  cpu {cpu:7.1f}")
    print(f"  {'notebook reloads':<18} {reload_s:7.1f}")
    budget = BUDGET_S.get(args.scale)
    failed = []
    verdict = ""
    if budget is not None:
        verdict = f"  (budget {budget} s: {'ok' if total <= budget else 'OVER'})"
        if total > budget:
            failed.append("time")
    print(f"  {'total':<18} {total:7.1f}{verdict}")
    print(f"  load average at the end: {os.getloadavg()}")

    def bar(name: str, ok: bool, text: str) -> None:
        checked = args.scale == "book"
        print(f"  {name:<34} {text}  {('ok' if ok else 'MISSED') if checked else ''}")
        if checked and not ok:
            failed.append(name)

    beh = res["behaviour"]
    val_loss = organism_dir(args.scale).manifest["metrics"]["final_val_loss"]
    print("== headline figures")
    bar("swapped facts learned (full)", beh.loc["full", "swapped_new"] >= SWAPPED_BAR,
        f"{beh.loc['full', 'swapped_new']:.3f} (bar >= {SWAPPED_BAR}; early "
        f"{beh.loc['early', 'swapped_new']:.3f}, late {beh.loc['late', 'swapped_new']:.3f})")
    bar("recipe learned (full)", beh.loc["full", "recipe_loss"] <= val_loss,
        f"{beh.loc['full', 'recipe_loss']:.3f} nats/token (base {beh.loc['base', 'recipe_loss']:.3f}"
        f"; bar <= organism val loss {val_loss:.3f})")
    print(f"  {'unchanged facts (full/early/late)':<34} "
          + " / ".join(f"{beh.loc[r, 'unchanged']:.3f}" for r in ("full", "early", "late")))
    for col, label in (("drift", "drift (1 - activation corr.)"),
                       ("dec_change", "decoder change (1 - cos)")):
        t = res["drift_test"][col]
        bar(label, t["p"] < P_BAR and t["median_shift"] > t["median_untouched"],
            f"median shift {t['median_shift']:.3f} (n={t['n_shift']}) vs untouched "
            f"{t['median_untouched']:.3f} (n={t['n_untouched']}), p={t['p']:.2g} (bar < {P_BAR})")
    fit = res["sae_fit"].groupby(["model", "sae"])[["fve", "loss_recovered"]].mean()
    for (model, sae), row in fit.iterrows():
        print(f"  SAE fit {model} model / {sae} SAE: FVE {row.fve:.3f}, loss recovered "
              f"{row.loss_recovered:.3f}")
    m = res["matching"]
    print(f"  matched fraction {m['matched_frac'].mean():.3f}, mean cos {m['mean_cos'].mean():.3f}")
    print(f"  explanations that hold: {res['drift']['holds'].mean():.3f}")
    acc = res["icl_accuracy"].groupby("model", sort=False)["accuracy"].mean()
    cd = res["icl_cd"].groupby("model", sort=False)["cd"].max()
    bar(f"ICL ({cfg.icl_family}) accuracy and CD reported",
        {"base", "icl_early", "icl_late"} <= set(acc.index) and bool(cd.notna().all()),
        ", ".join(f"{k}: acc {acc[k]:.3f} CD {cd[k]:.3f}" for k in acc.index))
    print("\n== " + ("every bar met" if not failed else f"MISSED: {', '.join(failed)}"))
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
