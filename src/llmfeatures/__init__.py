"""llmfeatures: how features form and organise inside transformer language models.

The package behind the book.  One module per concern:

- :mod:`llmfeatures.config` - scale, device, seeding and the cache folder
- :mod:`llmfeatures.cache` - atomic writes, checksummed manifests
- :mod:`llmfeatures.organism` - the embedded model organism (world, corpus, tokenizer, model, SAEs)
- :mod:`llmfeatures.loaders` - ``load_model`` / ``load_sae`` / ``load_world`` for every chapter
- :mod:`llmfeatures.features` - the feature engine: one streaming pass over a corpus (statistics,
  top-k examples, ground-truth purity, block co-occurrence, activation spectra) and dashboards
- :mod:`llmfeatures.circuits` - attention and FFN hidden states: head scores, logit lens, direct
  logit attribution, ablation and patching (chapter 2)
- :mod:`llmfeatures.galaxy` - the large-scale shape of the SAE point cloud: spectra, power laws,
  clustering entropy (chapter 5)
- :mod:`llmfeatures.icl` - concept encoding and decoding in in-context learning (chapter 6)
- :mod:`llmfeatures.plotting` - the figures the chapters share

One layer convention holds everywhere: layer ``L`` is ``blocks.L.hook_resid_post``, the residual
stream after block ``L`` (:func:`resid_hook`); the embeddings, where offered, are layer
:data:`EMBED` ``= -1`` (``blocks.0.hook_resid_pre``).
"""

from __future__ import annotations

import warnings

# TransformerLens 3.x warns that HookedTransformer will leave in 4.0; the book pins <4 on purpose.
warnings.filterwarnings("ignore", message="HookedTransformer is deprecated", category=DeprecationWarning)
# tqdm.auto advises installing ipywidgets when a notebook kernel lacks it; its text bars work anyway
warnings.filterwarnings("ignore", message="IProgress not found")

from llmfeatures.config import SCALES, get_device, get_scale, seed_everything  # noqa: E402
from llmfeatures.loaders import (  # noqa: E402
    EMBED,
    ModelUnavailableError,
    load_model,
    load_sae,
    load_world,
    model_checkpoints,
    resid_hook,
)

__version__ = "0.1.0"

__all__ = [
    "EMBED",
    "SCALES",
    "ModelUnavailableError",
    "load_model",
    "load_sae",
    "load_world",
    "model_checkpoints",
    "resid_hook",
    "__version__",
    "get_device",
    "get_scale",
    "seed_everything",
]
