"""The book's figure style: readable sizes inside, nothing else of the session changed after."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt

from llmfeatures.plotting import BOOK_RC, MAX_WIDTH, book_style


def test_book_style_applies_inside_and_restores_only_its_own_settings() -> None:
    seen = {}

    @book_style
    def draw():
        seen["font"] = plt.rcParams["font.size"]
        matplotlib.interactive(True)  # what the inline backend does while the first figure is made
        return "fig"

    before_font, before_interactive = plt.rcParams["font.size"], matplotlib.is_interactive()
    try:
        matplotlib.interactive(False)
        assert draw() == "fig"
        assert seen["font"] == BOOK_RC["font.size"]
        assert plt.rcParams["font.size"] == before_font
        # a setting the style does not own survives (with rc_context it would be reverted, and
        # Jupyter would stop showing the notebook's later figures)
        assert matplotlib.is_interactive()
    finally:
        matplotlib.interactive(before_interactive)


def test_chapter_6_figures_fit_the_text_column() -> None:
    import pandas as pd
    import torch

    from llmfeatures.icl import plots

    hist = pd.DataFrame([{"step": s, "basis": b, "n_examples": n, "mse": 1.0 / (n + 1)}
                         for s in (0, 10) for b in range(4) for n in range(20)])
    cd = pd.DataFrame([{"step": s, "layer": layer, "concept": c, "cd": 0.5}
                       for s in (0, 10) for layer in range(4) for c in ["0", "1", "2", "3", "mean"]])
    acc = pd.DataFrame({"family": ["a", "a", "b"], "task": ["x", "y", "z"],
                        "accuracy": [0.2, 0.9, 0.5]})
    figs = [plots.plot_loss_and_cd(hist, cd, layer=1, n_examples=19, curriculum=((0, 1), (5, 4))),
            plots.plot_cd_heatmap(cd), plots.plot_patching(torch.randn(4, 4), 2),
            plots.plot_accuracy_by_task(acc),
            plots.plot_cd_vs_accuracy(acc.assign(cd=[0.1, 0.8, 0.4]), title="a")]
    for fig in figs:
        assert fig.get_figwidth() <= MAX_WIDTH
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>":
                continue
            assert ax.get_xlabel() or ax.get_ylabel(), f"an axis without a label in {ax.get_title()}"
        plt.close(fig)
    # every colour keyed: the scatter's tasks and the bars' families have legend entries
    fig = plots.plot_cd_vs_accuracy(acc.assign(cd=[0.1, 0.8, 0.4]))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert {"x", "y", "z"} <= set(labels)
    plt.close(fig)
