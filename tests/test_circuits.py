"""Chapter 2 tools (llmfeatures.circuits) on models whose answers are known.

* A hand-built one-head model that copies the previous token: its head must score 1 as a
  previous-token detector (control near 0), its direct logit attribution is 1 for the head and 0
  for everything else (computable by hand), zeroing the head sends accuracy to 0, and the logit
  lens finds the answer only after the block.
* A random LayerNorm model: after ``prepare_model`` the parts of the DLA add up to the metric, and
  one head's attribution equals the hand computation (centre, divide by the final scale, project).
* The ci organism: the planted pronoun and fact behaviours are found where the chapter says.
* Bad input gives clear errors; the exercise checks reject wrong answers.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from llmfeatures.circuits import ablation, exercises, heads, lens, tasks
from tests.conftest import gpt2_stand_in

WORDS = "a b c d e f g h".split()



@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one CPU thread is as fast, and much faster on a busy machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def word_tokenizer(words):
    """A word-level fast tokenizer (offsets work; punctuation split off), wrapped like the
    organism's (BOS, EOS and PAD tokens first)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from llmfeatures.organism.tokenizer import BOS, EOS, PAD, wrap

    vocab = {w: i for i, w in enumerate([BOS, EOS, PAD, *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=PAD))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return wrap(tok)


# ---------------------------------------------------------------------------------------------
# a one-head model that copies the previous token
# ---------------------------------------------------------------------------------------------
N_CTX = 8


@pytest.fixture(scope="module")
def copier() -> HookedTransformer:
    """Residual dims: [positions (N_CTX) | token in (V) | token out (V)].  The head's query at
    position p matches the key of position p - 1 (a shifted position code); its value is the
    token, written into the 'out' block, which is all the unembedding reads."""
    tok = word_tokenizer(WORDS)
    V = len(tok)
    d = N_CTX + 2 * V
    cfg = HookedTransformerConfig(n_layers=1, d_model=d, n_heads=1, d_head=d, n_ctx=N_CTX,
                                  d_vocab=V, attn_only=True, normalization_type=None,
                                  act_fn="relu", positional_embedding_type="standard",
                                  default_prepend_bos=True, device="cpu", seed=0)
    model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
    sd = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    sd["pos_embed.W_pos"][:, :N_CTX] = torch.eye(N_CTX)
    sd["embed.W_E"][:, N_CTX:N_CTX + V] = torch.eye(V)
    big = 60.0 * d**0.5
    sd["blocks.0.attn.W_Q"][0, :N_CTX, :N_CTX] = big * torch.eye(N_CTX)
    sd["blocks.0.attn.W_K"][0, :N_CTX, 1:N_CTX] = torch.eye(N_CTX)[:, :-1]  # e_j -> e_{j+1}
    sd["blocks.0.attn.W_V"][0, N_CTX:N_CTX + V, N_CTX:N_CTX + V] = torch.eye(V)
    sd["blocks.0.attn.W_O"][0, N_CTX:N_CTX + V, N_CTX + V:] = torch.eye(V)
    sd["unembed.W_U"][N_CTX + V:, :] = torch.eye(V)
    for k, v in model.state_dict().items():  # keep the causal mask and IGNORE buffers
        if "mask" in k or "IGNORE" in k:
            sd[k] = v
    model.load_state_dict(sd)
    return model.eval()


@pytest.fixture(scope="module")
def copy_task() -> tasks.Task:
    rng = np.random.default_rng(0)
    prompts, answers = [], []
    for _ in range(30):
        words = list(rng.choice(WORDS, size=int(rng.integers(3, N_CTX - 1))))
        prompts.append(" ".join(words))
        answers.append(" " + words[-2])
    return tasks.Task("copy", prompts, answers,
                      [tuple(" " + w for w in WORDS if " " + w != a) for a in answers])


def test_copier_head_is_a_previous_token_detector(copier) -> None:
    texts = ["a b c d e f", "h g f e d", "c c a b"]
    s = heads.head_scores(copier, heads.previous_token_probe(copier, texts))
    assert s.score.shape == (1, 1)
    assert s.score[0, 0] > 0.99
    assert s.control[0, 0] < 0.02
    assert s.best() == (0, 0) and s.table().iloc[0]["head"] == "L0H0"
    _, cache = copier.run_with_cache(copier.to_tokens(texts[0]))
    assert heads.previous_token_score(cache["pattern", 0]).item() > 0.99


def test_copier_predicts_the_previous_token(copier, copy_task) -> None:
    res = tasks.evaluate_task(copier, copy_task)
    assert res["accuracy"] == 1.0
    assert res["metric"] == pytest.approx(1.0, abs=1e-3)  # logit 1 for the answer, 0 for others


def test_copier_dla_by_hand(copier, copy_task) -> None:
    """The head writes one-hot(previous token) into the block W_U reads: its attribution is
    logit(answer) - mean(logit(others)) = 1 - 0 = 1 ... plus nothing from the embeddings."""
    d = lens.direct_logit_attribution(copier, copy_task)
    assert d.heads.shape == (1, 1)
    assert d.heads[0, 0] == pytest.approx(1.0, abs=1e-3)
    assert d.components["L0 attn"] == pytest.approx(1.0, abs=1e-3)
    assert abs(d.components["embed"]) < 1e-6 and abs(d.components["pos_embed"]) < 1e-6
    assert d.neurons.shape == (1, 0)  # attention-only: no neurons


def test_copier_ablation_and_lens(copier, copy_task) -> None:
    tab = ablation.ablation_table(copier, copy_task, modes=("zero",))
    assert set(tab.component) == {"L0H0", "L0 attn"}
    assert (tab.accuracy == 0).all()  # all logits tie: the answer no longer wins
    ll = lens.logit_lens(copier, copy_task)
    assert (ll[ll.layer == "0"]["rank"] == 1).all()
    assert (ll[ll.layer == "embed"]["rank_among"] > 1).all()
    first = lens.first_layer_in_top(ll, k=1)
    assert (first == 1).all()


# ---------------------------------------------------------------------------------------------
# a random LayerNorm model: DLA against a hand computation
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def random_ln():
    tok = word_tokenizer(WORDS)
    cfg = HookedTransformerConfig(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=64,
                                  n_ctx=16, d_vocab=len(tok), act_fn="gelu",
                                  normalization_type="LN", device="cpu", seed=3)
    model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("ln1.w", "ln2.w", "ln_final.w", ".b", "b_in", "b_out", "b_O")):
                p.add_(0.3 * torch.randn_like(p))  # non-trivial LayerNorm weights and biases
    return model


def test_dla_needs_folded_layernorm(random_ln, copy_task) -> None:
    with pytest.raises(ValueError, match="prepare_model"):
        lens.direct_logit_attribution(random_ln, copy_task)


def test_dla_matches_hand_computation_and_sums_to_metric(random_ln, copy_task) -> None:
    import copy

    raw = copy.deepcopy(random_ln)
    model = lens.prepare_model(copy.deepcopy(random_ln))
    toks = raw.to_tokens(copy_task.prompts[:3])
    with torch.no_grad():
        assert torch.allclose(raw(toks).log_softmax(-1), model(toks).log_softmax(-1), atol=1e-4)
    d = lens.direct_logit_attribution(model, copy_task)
    enc = tasks.encode_task(model, copy_task)
    metric, _ = tasks.score_logits(enc, tasks.last_logits(model, enc))
    np.testing.assert_allclose(d.metric, metric.numpy(), atol=1e-4)
    # by hand: head L1H2, and the bias b_out of MLP 1, on every prompt
    total, bias_out = 0.0, 0.0
    with torch.no_grad():
        for i, toks in enumerate(enc.tokens):
            _, cache = model.run_with_cache(torch.tensor([toks]))
            z = cache["z", 1][0, -1, 2]  # [d_head]
            write = z @ model.W_O[1, 2]  # [d_model]
            write = (write - write.mean()) / cache["ln_final.hook_scale"][0, -1]
            others = enc.others[i][enc.others_mask[i]]
            direction = model.W_U[:, enc.answer[i]] - model.W_U[:, others].mean(1)
            total += float(write @ direction)
            b = model.b_out[1]
            bias_out += float((b - b.mean()) / cache["ln_final.hook_scale"][0, -1] @ direction)
    assert d.heads[1, 2] == pytest.approx(total / len(enc), abs=1e-4)
    # the neurons of MLP 1 add up to its attribution minus its bias's share
    assert d.neurons[1].sum() == pytest.approx(d.components["L1 mlp"] - bias_out / len(enc),
                                               abs=1e-4)


# ---------------------------------------------------------------------------------------------
# ablation mechanics
# ---------------------------------------------------------------------------------------------
def test_replacement_modes() -> None:
    act = torch.arange(24.0).reshape(3, 4, 2)
    assert (ablation.replacement(act, "zero") == 0).all()
    mean = ablation.replacement(act, "mean")
    assert torch.allclose(mean[0], act.mean(0)) and torch.allclose(mean[2], act.mean(0))
    assert torch.equal(ablation.replacement(act, "resample", [1, 2, 0])[0], act[1])
    with pytest.raises(ValueError, match="unknown ablation mode"):
        ablation.replacement(act, "noise")
    with pytest.raises(ValueError, match="permutation"):
        ablation.replacement(act, "resample")


def test_batched_ablation_matches_one_at_a_time(random_ln, copy_task) -> None:
    model = lens.prepare_model(random_ln)
    sets = [[], ["L1 mlp", "L0H3"], ["L0 attn"], ["L1H0", "L1H2"]]
    for mode in ("zero", "mean", "resample"):
        m_all, r_all = ablation.ablate_sets(model, copy_task, sets, mode=mode, seed=1)
        for j, s in enumerate(sets):
            m_one, r_one = ablation.ablate_sets(model, copy_task, [s], mode=mode, seed=1,
                                                max_tokens=1)
            assert torch.allclose(m_all[j], m_one[0], atol=1e-4), (mode, s)
    clean = tasks.evaluate_task(model, copy_task)["metric"]
    assert float(m_all[0].mean()) == pytest.approx(clean, abs=1e-4)


def test_component_names_are_checked(random_ln) -> None:
    assert ablation.parse_component("L1H3", random_ln) == ("head", 1, 3)
    assert ablation.parse_component("L0 mlp", random_ln) == ("mlp", 0, None)
    for bad, msg in (("L9H0", "layers 0..1"), ("L0H7", "heads 0..3"), ("head 3", "unknown")):
        with pytest.raises(ValueError, match=msg):
            ablation.parse_component(bad, random_ln)
    assert len(ablation.all_components(random_ln)) == 8 + 2 + 2


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def test_task_validation(copier) -> None:
    with pytest.raises(ValueError, match="no prompts"):
        tasks.Task("t", [], [], [])
    with pytest.raises(ValueError, match="one of each per prompt"):
        tasks.Task("t", ["a b"], [" a", " b"], [(" c",)])
    with pytest.raises(ValueError, match="at least one competitor"):
        tasks.Task("t", ["a b"], [" a"], [()])
    with pytest.raises(ValueError, match="together"):
        tasks.Task("t", ["a b"], [" a"], [(" c",)], corrupt_prompts=["a c"])
    same = tasks.Task("t", ["a b"], [" a"], [(" a",)])
    with pytest.raises(ValueError, match="same token as the answer"):
        tasks.encode_task(copier, same)
    uneven = tasks.Task("t", ["a b"], [" a"], [(" c",)], corrupt_prompts=["a b c"],
                        corrupt_answers=[" c"])
    with pytest.raises(ValueError, match="equal lengths"):
        tasks.encode_task(copier, uneven)
    with pytest.raises(ValueError, match="longer than the model's context"):
        tasks.encode_task(copier, tasks.Task("t", [" ".join(["a"] * 20)], [" a"], [(" b",)]))
    with pytest.raises(TypeError, match="expected a Task"):
        tasks.encode_task(copier, "a b")
    with pytest.raises(ValueError, match="'{s}' slot"):
        tasks.fact_task([("x", "y"), ("z", "w")], template="The capital is")
    with pytest.raises(ValueError, match="n_prompts"):
        tasks.ioi_task(0)


def test_probe_and_patching_errors(copier, copy_task) -> None:
    with pytest.raises(ValueError, match="at or before it"):
        heads.AttentionProbe("p", [[0, 1, 2]], [[(1, (2,))]])
    with pytest.raises(ValueError, match="outside"):
        heads.AttentionProbe("p", [[0, 1, 2]], [[(5, (1,))]])
    with pytest.raises(ValueError, match="no queries"):
        heads.AttentionProbe("p", [[0, 1]], [[]])
    with pytest.raises(ValueError, match="does not occur"):
        heads.antecedent_probe(copier, ["a b c"], ["Nora"])
    with pytest.raises(ValueError, match="ends with"):
        heads.fewshot_spans("a -> b ; c")
    with pytest.raises(ValueError, match="no corrupted prompts"):
        ablation.patch_heads(copier, copy_task)
    with pytest.raises(ValueError, match="k must be"):
        lens.first_layer_in_top(pd.DataFrame({"prompt": [0], "depth": [0], "rank": [1]}), 0)
    with pytest.raises(ValueError, match="is not a head"):
        ablation.head_set_curve(copier, copy_task, ["L3H0"])


def test_fewshot_spans() -> None:
    p = "France -> Paris ; Japan -> Tokyo ; Peru ->"
    query, outputs = heads.fewshot_spans(p)
    assert p[slice(*query)] == "Peru"
    assert [p[slice(*o)] for o in outputs] == ["Paris", "Tokyo"]


# ---------------------------------------------------------------------------------------------
# exercise checks accept the right answer and reject wrong ones
# ---------------------------------------------------------------------------------------------
def test_check_previous_token_score() -> None:
    exercises.check_previous_token_score(heads.previous_token_score)
    with pytest.raises(AssertionError):
        exercises.check_previous_token_score(
            lambda p: p.diagonal(dim1=-2, dim2=-1).mean((0, 2)))  # the main diagonal
    with pytest.raises(AssertionError):
        exercises.check_previous_token_score(
            lambda p: p.diagonal(offset=-1, dim1=-2, dim2=-1).mean(2))  # no batch mean


def test_check_logit_lens(random_ln) -> None:
    model = lens.prepare_model(random_ln)

    def right(model, cache, layer):
        return model.unembed(model.ln_final(cache[f"blocks.{layer}.hook_resid_post"][:, -1:]))[:, 0]

    def no_ln(model, cache, layer):
        return model.unembed(cache[f"blocks.{layer}.hook_resid_post"][:, -1:])[:, 0]

    exercises.check_logit_lens(right, model, "a b c d")
    with pytest.raises(AssertionError):
        exercises.check_logit_lens(no_ln, model, "a b c d")


def test_check_mean_ablation_hook() -> None:
    def right(head):
        def hook(z, hook):
            z[:, :, head] = z[:, :, head].mean(0, keepdim=True)
            return z
        return hook

    def over_positions(head):
        def hook(z, hook):
            z[:, :, head] = z[:, :, head].mean((0, 1), keepdim=True)
            return z
        return hook

    def all_heads(head):
        def hook(z, hook):
            return z.mean(0, keepdim=True).expand_as(z).clone()
        return hook

    exercises.check_mean_ablation_hook(right)
    for wrong in (over_positions, all_heads):
        with pytest.raises(AssertionError):
            exercises.check_mean_ablation_hook(wrong)


# ---------------------------------------------------------------------------------------------
# the ci organism: the planted behaviours are found where the chapter says
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def organism():
    import llmfeatures

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = llmfeatures.load_model("organism", scale="ci", device="cpu")
    return lens.prepare_model(model), llmfeatures.load_world(scale="ci")


@pytest.mark.slow
def test_organism_pronoun_gender_moves_through_layer0_heads(organism) -> None:
    model, world = organism
    pron = tasks.pronoun_task(world, n_per_person=3, model=model)
    clean = tasks.evaluate_task(model, pron)
    assert clean["accuracy"] > 0.75
    s = heads.head_scores(model, heads.antecedent_probe(model, pron.prompts, pron.meta.name))
    # some head looks at the name well above its control; which one is not fixed: on the
    # version-7 organisms a later head looks at the name most while layer 0's heads carry the
    # gender, and chapter 2's verdicts say which of the two the run shows
    assert s.table().iloc[0].excess > 0.02
    later = [f"L{i} attn" for i in range(1, model.cfg.n_layers)]
    tab = ablation.ablation_table(model, pron, components=["L0 attn", *later], modes=("zero",))
    acc = tab.set_index("component").accuracy
    assert acc["L0 attn"] < 0.6 < acc[later].min()
    ph = ablation.patch_heads(model, pron)
    assert ph.values.shape == (model.cfg.n_layers, model.cfg.n_heads)
    assert ph.values[0].max() > 0.25 and abs(ph.values[1:]).max() < 0.15
    # layer 0's heads, zeroed together in the order of their patching effect, cost more than as
    # many random heads: the gender moves through the group
    n = model.cfg.n_heads
    ranking = [f"L0H{h}" for h in np.argsort(-ph.values[0])]
    curve = ablation.head_set_curve(model, pron, ranking, n_random=6, max_k=n)
    ranked = curve[curve.kind == "ranked"].set_index("k").accuracy
    random_mean = curve[curve.kind == "random"].groupby("k").accuracy.mean()
    assert ranked[n] < random_mean[n] - 0.1


@pytest.mark.slow
def test_organism_fact_recall_is_localised(organism) -> None:
    model, world = organism
    facts = tasks.organism_fact_task(world, model)
    ll = lens.logit_lens(model, facts)
    last = ll[ll.depth == model.cfg.n_layers]
    enc = tasks.encode_task(model, facts)
    logits = tasks.last_logits(model, enc)
    want = (logits >= logits.gather(1, enc.answer[:, None])).sum(1)
    assert last.sort_values("prompt")["rank"].tolist() == want.tolist()
    first = lens.first_layer_in_top(ll)
    # never from the embeddings (0); most facts reach the top 5 at some block (-1: never; the ci
    # organism knows only about half of its facts at top 1, the version-7 one 0.57)
    assert (first != 0).all() and (first >= 1).mean() > 0.6
    pr = ablation.patch_block_every(model, facts)
    assert pr.values.shape == (3, model.cfg.n_layers, 6)
    subj = pr.labels.index(" France")
    assert pr.values[0, 0, subj] > 0.9  # the subject's stream before block 0 holds the fact
    assert pr.values[0, -1, -1] > 0.9  # ... and the last position's stream before the last block
    assert abs(pr.values[0, :, :subj]).max() < 0.05  # the template tokens carry nothing
    dla = lens.direct_logit_attribution(model, facts)
    tab = ablation.ablation_table(model, facts, modes=("mean",))
    cmp, rho = ablation.dla_vs_ablation(dla, tab)
    assert len(cmp) == model.cfg.n_layers * (model.cfg.n_heads + 1)
    assert -1 <= rho <= 1 and rho > 0.3


# ---------------------------------------------------------------------------------------------
# the paper-scale path on a GPT-2 stand-in, offline
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gpt2_standin():


    ioi = tasks.ioi_task(n_prompts=12)  # four templates of three lengths
    facts = tasks.fact_task([("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"),
                             ("Japan", "Tokyo")])
    words = sorted({w for t in (ioi, facts) for p in [*t.prompts, *t.answers]
                    for w in p.replace(",", " , ").split()} | {","})
    tok = word_tokenizer(words)
    model = gpt2_stand_in(tok, n_head=4, n_positions=32)
    return model, ioi, tasks.fact_task(facts.meta[["subject", "object"]].values.tolist(),
                                       model=model)


def test_paper_path_runs_on_a_gpt2_standin(gpt2_standin, monkeypatch) -> None:
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    model, ioi, facts = gpt2_standin
    assert model.cfg.normalization_type == "LNPre"  # folded on load: DLA works as is
    s = heads.head_scores(model, heads.antecedent_probe(model, ioi.prompts, ioi.meta.io,
                                                        name="to -> indirect object"))
    assert s.score.shape == (2, 4) and (s.score >= 0).all() and (s.score <= 1).all()
    dla = lens.direct_logit_attribution(model, ioi)
    enc = tasks.encode_task(model, ioi)
    metric, _ = tasks.score_logits(enc, tasks.last_logits(model, enc))
    np.testing.assert_allclose(dla.metric, metric.numpy(), atol=1e-4)
    tab = ablation.ablation_table(model, ioi, components=["L0H0", "L1 mlp"])
    assert len(tab) == 6
    curve = ablation.head_set_curve(model, ioi, s.table()["head"].tolist(), n_random=2, max_k=2)
    assert set(curve.k) == {0, 1, 2}
    ph = ablation.patch_heads(model, ioi)
    assert ph.values.shape == (2, 4) and np.isfinite(ph.values).all()
    lengths = pd.Series([len(t) for t in enc.tokens]).value_counts()
    pb = ablation.patch_block_every(model, ioi)  # the most common length only
    assert pb.values.shape[:2] == (3, 2) and len(pb.labels) == pb.values.shape[2]
    assert pb.values.shape[2] == lengths.index[0] and pb.n_pairs == lengths.iloc[0]
    with pytest.raises(ValueError, match="no prompt pairs of 99 tokens"):
        ablation.patch_block_every(model, ioi, length=99)
    ll = lens.logit_lens(model, facts)
    assert set(ll.layer) == {"embed", "0", "1"}
