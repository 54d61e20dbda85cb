"""The feature statistics engine: one streaming pass that every feature chapter reads.

Chapters 1, 3, 4, 5 and 7 need the same raw material: what every SAE latent and MLP neuron does
over a corpus.  This package computes it once, in batches, and caches it:

- :func:`feature_stats` (cached) / :func:`collect_feature_stats` (uncached): the pass itself,
  returning :class:`FeatureStats` (per layer: :class:`SiteStats` for SAE latents and MLP neurons,
  :class:`Cooccurrence` of SAE latents in blocks, :class:`ResidMoments` of the residual stream);
- :func:`organism_feature_stats`: the same on the model organism with its ground-truth labels;
- :func:`harvest_texts`: the same on a real model (GPT-2 small, Gemma-2-2b + Gemma Scope) over a
  text dataset, for Colab;
- :func:`feature_dashboard`: an HTML dashboard of one unit, for the book and for notebooks.

Layer ``L`` is ``blocks.L.hook_resid_post`` throughout; the MLP neurons of layer ``L`` are
``blocks.L.mlp.hook_post``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from llmfeatures.features.corpus import TokenCorpus, organism_corpus, tokenize_documents
from llmfeatures.features.dashboard import FeatureDashboard, feature_dashboard
from llmfeatures.features.engine import (
    ENGINE_VERSION,
    collect_feature_stats,
    mlp_hook,
    reference_cooccurrence,
    resid_hook,
    stats_key,
)
from llmfeatures.features.stats import (
    Cooccurrence,
    FeatureStats,
    ResidMoments,
    SiteStats,
    StatsConfig,
)


def feature_stats(
    model,
    corpus: TokenCorpus,
    saes: Mapping[int, object] | None = None,
    layers: Sequence[int] | None = None,
    config: StatsConfig | None = None,
    *,
    cache: bool = True,
    scale: str | None = None,
    progress: bool = True,
) -> FeatureStats:
    """:func:`collect_feature_stats`, cached under ``<cache>/features/<scale>-<hash>/``.

    The hash covers the model's and SAEs' weights, the corpus (tokens and labels), the layers and
    the config, so a second call with the same inputs loads the file instead of running the pass.
    """
    from llmfeatures.cache import ArtifactDir, atomic_path
    from llmfeatures.config import get_scale

    saes = dict(saes or {})
    config = config or StatsConfig()
    if layers is None:
        layers = sorted(saes) if saes else list(range(model.cfg.n_layers))
    if not cache:
        return collect_feature_stats(model, corpus, saes, layers, config, progress=progress)
    art = ArtifactDir("features", get_scale(scale), stats_key(model, corpus, saes, layers, config),
                      version=ENGINE_VERSION)

    def build(folder) -> list[str]:
        stats = collect_feature_stats(model, corpus, saes, layers, config, progress=progress)
        with atomic_path(folder / "stats.npz") as tmp:
            stats.save(tmp)
        return ["stats.npz"]

    art.stage("stats", build)
    return FeatureStats.load(art.path / "stats.npz")


def organism_feature_stats(
    scale: str | None = None,
    splits: Sequence[str] = ("val",),
    layers: Sequence[int] | None = None,
    config: StatsConfig | None = None,
    max_docs: int | None = None,
    device=None,
    progress: bool = True,
) -> FeatureStats:
    """The engine on the organism at ``scale``: its model, its SAE of every layer in ``layers``
    (default: all), and the documents of ``splits`` with their ground truth; cached."""
    from llmfeatures.loaders import load_model, load_sae, load_world
    from llmfeatures.organism.pipeline import _cpu_threads, organism_config

    model = load_model("organism", scale=scale, device=device)
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    saes = {L: load_sae("organism", L, scale=scale, device=device, model=model) for L in layers}
    corpus = organism_corpus(load_world(scale), model.tokenizer, splits, max_docs=max_docs)
    # the organism's thread setting: one torch thread is the fastest for these small models on
    # a shared 2-core machine (the engine measured 4x faster with 1 thread than with 2 there)
    on_cpu = next(model.parameters()).device.type == "cpu"
    with _cpu_threads(organism_config(scale).cpu_threads if on_cpu else 0):
        return feature_stats(model, corpus, saes, layers, config, scale=scale, progress=progress)


def harvest_texts(
    model,
    texts: Sequence[str],
    saes: Mapping[int, object] | None = None,
    layers: Sequence[int] | None = None,
    config: StatsConfig | None = None,
    max_tokens_per_doc: int | None = 1024,
    **kwargs,
) -> FeatureStats:
    """The engine on a real model over plain texts (no ground truth), cached.

    Documents are truncated to ``max_tokens_per_doc`` tokens (the reference truncates The Pile to
    1024).  Memory on a T4 (16 GB), estimated, not measured here (no GPU is lent to this
    project): Gemma-2-2b in float16 is 5.2 GB; its Gemma Scope 16k SAE 0.3 GB; the co-occurrence
    matrix of one 16k SAE 1.1 GB (float32, in place); a batch of ``batch_tokens=4096`` adds about
    0.3 GB of encoded latents and 0.2 GB of attention scores.  So one SAE layer at a time with
    ``batch_tokens=4096`` fits; GPT-2 small (0.5 GB) with its 24k-latent SAEs fits at
    ``batch_tokens=16384`` for one layer with co-occurrence, or all 12 layers without it
    (``StatsConfig(cooccurrence=False)``).
    """
    texts = [t for t in texts if t and t.strip()]
    corpus = tokenize_documents(model.tokenizer, texts)
    if max_tokens_per_doc is not None:
        keep = [corpus.doc(d)[:max_tokens_per_doc] for d in range(corpus.n_docs)]
        import numpy as np

        lengths = np.array([len(k) for k in keep])
        corpus = TokenCorpus(tokens=np.concatenate(keep), offsets=np.concatenate([[0], np.cumsum(lengths)]),
                             token_strings=corpus.token_strings)
    return feature_stats(model, corpus, saes, layers, config, **kwargs)


def load_texts(dataset: str = "monology/pile-uncopyrighted", n_docs: int = 1000,
               split: str = "train", text_field: str = "text") -> list[str]:
    """The first ``n_docs`` texts of a Hugging Face dataset, streamed (needs the network).

    Raises :class:`~llmfeatures.loaders.ModelUnavailableError` with a clear message offline.
    """
    from llmfeatures.loaders import ModelUnavailableError, _hub_errors

    if n_docs < 1:
        raise ValueError(f"n_docs must be >= 1, got {n_docs}.")
    try:
        with _hub_errors(f"The dataset {dataset}", gated=False):
            import datasets

            ds = datasets.load_dataset(dataset, split=split, streaming=True)
            out = []
            for row in ds:
                out.append(row[text_field])
                if len(out) >= n_docs:
                    break
    except ModelUnavailableError:
        raise
    except (OSError, ConnectionError, ValueError) as err:
        raise ModelUnavailableError(
            f"The dataset {dataset!r} could not be loaded ({type(err).__name__}: {err}). It is "
            "streamed from the Hugging Face Hub: run this in Colab or online, or pass your own "
            "texts to harvest_texts."
        ) from err
    return out


__all__ = [
    "Cooccurrence",
    "FeatureDashboard",
    "FeatureStats",
    "ResidMoments",
    "SiteStats",
    "StatsConfig",
    "TokenCorpus",
    "collect_feature_stats",
    "feature_dashboard",
    "feature_stats",
    "harvest_texts",
    "load_texts",
    "mlp_hook",
    "organism_corpus",
    "organism_feature_stats",
    "reference_cooccurrence",
    "resid_hook",
    "tokenize_documents",
]
