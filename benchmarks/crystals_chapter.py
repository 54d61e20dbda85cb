"""Chapter 3 (crystals): run time and the acceptance figures of the chapter, with their bars.

Usage: ``python benchmarks/crystals_chapter.py [ci|book|gpu|paper]``

Runs :func:`llmfeatures.crystals.organism_crystals` on the organism of the scale (built and cached
first if it is not) and prints its wall time and the figures the chapter quotes, each beside its
bar and its baseline.  Exits non-zero when the run takes longer than :data:`BUDGET_S` for the
scale or a bar is missed (the figure bars are the issue's ``book``-scale acceptance and are
checked at ``book`` only; other scales print them):

- LDA on held-out pairs: the silhouette gain over the raw differences is at least
  :data:`LDA_GAIN_BAR` for some representation, beside the permuted-label null;
- the length distractor: |r| of PC1 with the character-length difference beyond its permutation
  null (95th percentile) where it is strongest;
- the crystal search on the decoded codes: precision over its candidates above twice the
  shuffled-decoder control's plus :data:`SEARCH_MARGIN`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings

BUDGET_S = {"ci": 120, "book": 300}  # organism_crystals alone, wall seconds on 2 CPU cores
LDA_GAIN_BAR = 0.2
SEARCH_MARGIN = 0.02


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scale", nargs="?", default="book")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    from llmfeatures.crystals import organism_crystals
    from llmfeatures.loaders import load_model

    load_model("organism", scale=args.scale)  # build outside the timing when not cached
    start = time.perf_counter()
    cr = organism_crystals(scale=args.scale)
    seconds = time.perf_counter() - start
    checks = {f"run time {seconds:.0f} s <= {BUDGET_S.get(args.scale, float('inf'))}":
              seconds <= BUDGET_S.get(args.scale, float("inf"))}

    print(f"organism_crystals at {args.scale}: {seconds:.0f} s")
    print("\nLDA on held-out pairs (5-fold, shrinkage chosen per fold on its training pairs):")
    for (kind, layer), sw in cr.lda.items():
        t = sw.table
        print(f"  {kind:8s} layer {layer:2d}: raw {sw.raw:+.3f} -> {t.heldout[sw.best]:+.3f} "
              f"with {sw.best} components (gain {sw.gain:+.3f}); null {t.null[sw.best]:+.3f}; "
              f"in-sample permuted labels {t.in_sample_null.max():+.3f}")
    gain = max(sw.gain for sw in cr.lda.values())
    checks[f"LDA gain {gain:.3f} >= {LDA_GAIN_BAR}"] = gain >= LDA_GAIN_BAR

    chars = cr.distractor[cr.distractor.target == "chars"]
    best = chars.loc[chars.abs_r.idxmax()]
    print(f"\nlength distractor: |r| {best.abs_r:.3f} ({best.kind}, layer {int(best.layer)}), "
          f"null 95% {best.null_q95:.3f}, p {best.p:.3f}")
    checks[f"PC1 vs length |r| {best.abs_r:.3f} > null {best.null_q95:.3f}"] = \
        best.abs_r > best.null_q95

    print("\ncrystal search (precision; control in brackets):")
    for name, t in cr.search_table.items():
        cells = [f"{k} {t.loc[k, 'precision']:.3f} ({t.loc[k, 'control_precision']:.4f})"
                 for k in t.index]
        print(f"  {name:20s} n {int(t.loc['all', 'n']):7d}: " + ", ".join(cells)
              + f"; recall {t.loc['all', 'recall']:.3f} ({t.loc['all', 'control_recall']:.4f})")
    dec = cr.search_table["decoded"].loc["all"]
    checks[f"search precision {dec.precision:.3f} > 2 x control {dec.control_precision:.4f} "
           f"+ {SEARCH_MARGIN}"] = dec.precision > 2 * dec.control_precision + SEARCH_MARGIN

    print()
    failed = False
    for text, ok in checks.items():
        bar = not text.startswith("run time")
        if bar and args.scale != "book":
            print(f"  (not checked at {args.scale}) {text}")
            continue
        print(f"  {'ok  ' if ok else 'MISS'} {text}")
        failed |= not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
