"""A hand-set HookedTransformer whose attributions and maximising inputs are known exactly."""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

VOCAB = ["<bos>", "a", "b", "c", "d", "e", "f", "g"]


class _Tok:
    """The minimal tokenizer the tests need: one character per token."""

    bos_token_id, pad_token_id, eos_token_id, unk_token_id = 0, None, None, None
    padding_side = "right"


def planted_model() -> HookedTransformer:
    """One layer, d_model 4, no LayerNorm, no positional embedding.  Attention is uniform over
    the causal prefix and copies dimension 0 (W_V W_O = identity on it); MLP neuron 0 reads
    dimension 1 through a ReLU.  Token ``k`` (1..7) has ``e_k = (k, 8 - k, 0, 0)``; the unembedding
    reads dimension 0 (logit of token 1) and 3 (others).  So at the last of T positions:
    logit_1 = e_last[0] + mean_j e_j[0] over the T positions, and neuron 0's pre-activation is
    e_last[1]: the maximising input of the neuron ends in token 1 ("a")."""
    cfg = HookedTransformerConfig(n_layers=1, d_model=4, n_ctx=8, d_head=4, n_heads=1, d_mlp=2,
                                  d_vocab=len(VOCAB), act_fn="relu", normalization_type=None,
                                  positional_embedding_type="standard")
    m = HookedTransformer(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        for k in range(1, len(VOCAB)):
            m.W_E[k] = torch.tensor([float(k), 8.0 - k, 0.0, 0.0])
        m.blocks[0].attn.W_V[0, 0, 0] = 1.0
        m.blocks[0].attn.W_O[0, 0, 0] = 1.0
        m.blocks[0].mlp.W_in[1, 0] = 1.0
        m.W_U[0, 1] = 1.0
        m.W_U[3, 2:] = 1.0
    m.tokenizer = _Tok()
    m.to_str_tokens = lambda toks: [VOCAB[int(t)] for t in torch.as_tensor(toks).reshape(-1)]
    return m.eval()
