"""The organism's world: configuration, presets, documents per split and every ground truth.

:func:`build_world` is pure and seeded: the same :class:`WorldConfig` always gives the same texts.
Documents are generated on first request per split and kept.  Ground truth comes as DataFrames:
the lexicon (part of speech, gender, entity type, length of every word), the people and countries,
each document's domain and few-shot family/task, and the evaluation sets, whose prompts are built
from fresh random draws (the facts themselves are of course seen in training; the held-out 2-digit
additions are not).

Splits: ``train`` and ``val`` (the pre-training distribution), ``finetune_train`` and
``finetune_val`` (the shifted world: a few capitals and occupations swapped, plus the ``recipe``
domain that pre-training never sees).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pandas as pd

from llmfeatures.config import pick
from llmfeatures.organism import vocab
from llmfeatures.organism.corpus import (
    CAPITAL_REGION,
    DOMAIN_GROUPS,
    FACT_TEMPLATES,
    FEWSHOT_GROUPS,
    LANGUAGE_REGION,
    Corpus,
)
from llmfeatures.organism.facts import Change, Facts, make_facts, shift_facts
from llmfeatures.organism.fewshot import (
    FEWSHOT_FAMILIES,
    check_family_task,
    fewshot_document,
    render_prompt,
    sample_items,
    tagged_sentence,
)

DOMAINS: tuple[str, ...] = ("narrative", "encyclopedia", "chat", "wordgame", "arithmetic", "bitwise",
                            "code", "fewshot")
GROUPS: tuple[str, ...] = ("prose", "formal")
FINETUNE_DOMAINS: tuple[str, ...] = ("encyclopedia", "narrative", "chat", "recipe")
SPLITS: tuple[str, ...] = ("train", "val", "finetune_train", "finetune_val")
MIN_TRAIN_DOCS = 100
MIN_EVAL_DOCS = 10


@dataclass(frozen=True)
class WorldConfig:
    """Everything that decides the world and its corpus.

    ``domain_weights`` are the shares of the pre-training domains (in :data:`DOMAINS` order) and
    ``finetune_weights`` those of the fine-tuning domains (:data:`FINETUNE_DOMAINS` order); each
    split holds ``round(weight * n)`` documents of each domain, so every domain is present.
    """

    seed: int = 0
    n_train_docs: int = 10_000
    n_val_docs: int = 400
    n_finetune_docs: int = 1000
    n_finetune_val_docs: int = 100
    domain_weights: tuple[float, ...] = (0.16, 0.24, 0.08, 0.12, 0.08, 0.06, 0.08, 0.18)
    finetune_weights: tuple[float, ...] = (0.45, 0.2, 0.1, 0.25)
    n_capital_swaps: int = 2
    n_occupation_swaps: int = 2
    n_heldout_additions: int = 300
    min_fewshot_items: int = 3
    max_fewshot_items: int = 11
    sign_rate: float = 0.8
    card_rate: float = 0.7

    def __post_init__(self) -> None:
        for name in ("n_train_docs", "n_val_docs", "n_finetune_docs", "n_finetune_val_docs"):
            if not isinstance(getattr(self, name), int):
                raise ValueError(f"{name} must be an int, got {getattr(self, name)!r}")
        if self.n_train_docs < MIN_TRAIN_DOCS:
            raise ValueError(
                f"n_train_docs={self.n_train_docs} is too small: every domain and entity needs "
                f"documents; use n_train_docs >= {MIN_TRAIN_DOCS} (the ci preset uses "
                f"{_CI_TRAIN})."
            )
        for name in ("n_val_docs", "n_finetune_docs", "n_finetune_val_docs"):
            if getattr(self, name) < MIN_EVAL_DOCS:
                raise ValueError(
                    f"{name}={getattr(self, name)} is too small; use {name} >= {MIN_EVAL_DOCS} "
                    "so that every domain is present."
                )
        for name, weights, domains in (
            ("domain_weights", self.domain_weights, DOMAINS),
            ("finetune_weights", self.finetune_weights, FINETUNE_DOMAINS),
        ):
            if len(weights) != len(domains) or min(weights) <= 0:
                raise ValueError(
                    f"{name} needs {len(domains)} positive weights, one per domain in the order "
                    f"{domains}; got {weights}."
                )
        if not 1 <= self.min_fewshot_items <= self.max_fewshot_items <= 20:
            raise ValueError(
                "few-shot documents need 1 <= min_fewshot_items <= max_fewshot_items <= 20; got "
                f"{self.min_fewshot_items}..{self.max_fewshot_items}."
            )
        if not 0 <= self.n_heldout_additions <= 1000:
            raise ValueError(
                f"n_heldout_additions={self.n_heldout_additions}: use 0..1000 so that enough "
                "additions are left for training."
            )


_CI_TRAIN = 2000
WORLD_PRESETS: dict[str, WorldConfig] = {
    # ci: the word game at 8%, its share given back to the narrative (pronoun) stories: with the
    # book's 12% taken from narrative, the 3-layer ci model (500 steps) moved the gender through
    # layer 2, not layer 0's heads as chapter 2 says, and left one untouched latent for chapter 7
    "ci": WorldConfig(n_train_docs=_CI_TRAIN, n_val_docs=100, n_finetune_docs=300,
                      n_finetune_val_docs=40, n_heldout_additions=100, sign_rate=0.2, card_rate=0.15,
                      domain_weights=(0.20, 0.24, 0.08, 0.08, 0.08, 0.06, 0.08, 0.18)),
    # the val split also scores the SAEs: 2400 documents are ~230k held-out tokens, enough for
    # "dead = never fires on the held-out tokens" to mean rare, not merely unlucky
    "book": WorldConfig(n_val_docs=2400),
    "gpu": WorldConfig(n_train_docs=60_000, n_val_docs=2000, n_finetune_docs=6000,
                       n_finetune_val_docs=500),
    "paper": WorldConfig(n_train_docs=200_000, n_val_docs=5000, n_finetune_docs=20_000,
                         n_finetune_val_docs=1000),
}


def _quota(rng: random.Random, names: tuple[str, ...], weights: tuple[float, ...],
           n: int) -> list[str]:
    """``n`` domain labels, ``round(w * n)`` of each (at least one), in a shuffled order."""
    total = sum(weights)
    counts = [max(1, round(w / total * n)) for w in weights]
    while sum(counts) > n:  # rounding overshoot: take from the largest share
        counts[counts.index(max(counts))] -= 1
    counts[-1] += n - sum(counts)
    labels = [d for d, c in zip(names, counts, strict=True) for _ in range(c)]
    rng.shuffle(labels)
    return labels


class World:
    """A generated world: facts, relations, lexicon, documents per split and evaluation sets."""

    def __init__(self, config: WorldConfig) -> None:
        self.config = config
        self.domains: tuple[str, ...] = DOMAINS
        self.finetune_domains: tuple[str, ...] = FINETUNE_DOMAINS
        self.fewshot_families: dict[str, tuple[str, ...]] = dict(FEWSHOT_FAMILIES)
        self.facts: Facts = make_facts(config.seed)
        self.shifted_facts, self.changes = shift_facts(
            self.facts, config.seed, config.n_capital_swaps, config.n_occupation_swaps
        )
        self.relations: dict[str, list[tuple[str, str]]] = self.facts.relations()
        self.people = pd.DataFrame(
            [(p.name, p.gender, p.occupation, p.instrument, p.sport, p.field)
             for p in self.facts.people],
            columns=["name", "gender", "occupation", "instrument", "sport", "field"],
        )
        self.countries = pd.DataFrame(
            [(c.name, c.capital, c.currency, c.language, c.region) for c in self.facts.countries],
            columns=["country", "capital", "currency", "language", "region"],
        )
        self.lexicon = _build_lexicon(self.facts)
        rng = random.Random(f"llmfeatures-heldout-add-{config.seed}")
        heldout: set[tuple[int, int]] = set()
        while len(heldout) < config.n_heldout_additions:
            heldout.add((rng.randint(10, 99), rng.randint(10, 99)))
        self.heldout_additions: tuple[tuple[int, int], ...] = tuple(sorted(heldout))
        self._docs: dict[str, pd.DataFrame] = {}

    def __repr__(self) -> str:
        c = self.config
        return (f"World(seed={c.seed}, train={c.n_train_docs}, val={c.n_val_docs}, "
                f"finetune={c.n_finetune_docs}/{c.n_finetune_val_docs}, "
                f"relations={len(self.relations)}, words={len(self.lexicon)})")

    # ------------------------------------------------------------------ documents
    def documents(self, split: str) -> pd.DataFrame:
        """All documents of ``split``: columns doc_id, domain, group, text, family, task, subject,
        gender.

        ``group`` is ``"formal"`` (arithmetic, bitwise, code, bitwise few-shot) or ``"prose"``
        (everything else, including relation and part-of-speech few-shot documents).
        ``family``/``task`` are set for few-shot documents only (None elsewhere).  ``subject`` is
        the protagonist of a narrative (a name, or a gendered noun such as ``king``), the entity
        of an encyclopedia article (None for a list of facts), ``addition``/``bitwise`` for
        arithmetic and the dish of a recipe; ``gender`` ('m'/'f') is set for narratives and
        person articles.
        """
        if split not in SPLITS:
            raise ValueError(f"Unknown split {split!r}; valid splits: {', '.join(SPLITS)}.")
        if split not in self._docs:
            self._docs[split] = self._generate(split)
        return self._docs[split]

    def texts(self, split: str) -> list[str]:
        """The document texts of ``split``, in order."""
        return self.documents(split)["text"].tolist()

    def _generate(self, split: str) -> pd.DataFrame:
        c = self.config
        rng = random.Random(f"llmfeatures-docs-{c.seed}-{split}")
        if split.startswith("finetune"):
            facts = self.shifted_facts
            focus = tuple(sorted({ch.subject for ch in self.changes}))
            n = c.n_finetune_docs if split == "finetune_train" else c.n_finetune_val_docs
            labels = _quota(rng, FINETUNE_DOMAINS, c.finetune_weights, n)
        else:
            facts, focus = self.facts, ()
            n = c.n_train_docs if split == "train" else c.n_val_docs
            labels = _quota(rng, DOMAINS, c.domain_weights, n)
        corpus = Corpus(facts, frozenset(self.heldout_additions), focus, c.sign_rate, c.card_rate)
        rows = []
        for i, domain in enumerate(labels):
            family = task = subject = gender = None
            if domain == "fewshot":
                text, family, task = fewshot_document(
                    rng, facts, c.min_fewshot_items, c.max_fewshot_items
                )
            else:
                text, meta = getattr(corpus, domain)(rng)
                subject, gender = meta["subject"], meta["gender"]
            group = FEWSHOT_GROUPS[family] if domain == "fewshot" else DOMAIN_GROUPS[domain]
            rows.append((i, domain, group, text, family, task, subject, gender))
        df = pd.DataFrame(
            rows,
            columns=["doc_id", "domain", "group", "text", "family", "task", "subject", "gender"],
        )
        return _none_for_missing(df, ["family", "task", "subject", "gender"])

    # ------------------------------------------------------------------ evaluation sets
    def eval_facts(self, heldout_templates: bool = False) -> pd.DataFrame:
        """One completion prompt per fact: prompt, answer, relation, subject, template.

        By default the prompt is the canonical template (``"The capital of France is"``), which
        training documents also use; ``heldout_templates=True`` uses a phrasing no document has.
        """
        key = "heldout" if heldout_templates else "eval"
        rows = []
        for relation, pairs in self.relations.items():
            tpl = str(FACT_TEMPLATES[relation][key])
            for s, o in pairs:
                rows.append((tpl.format(s=s), " " + o, relation, s, key))
        return pd.DataFrame(rows, columns=["prompt", "answer", "relation", "subject", "template"])

    def eval_pronouns(self, n_per_person: int = 3, seed: int = 0) -> pd.DataFrame:
        """Prompts whose next word is the subject pronoun of a named person.

        ``"Nora was a pilot who lived in Oslo. Later that day,"`` -> ``" she"``.  Columns prompt,
        answer, gender, name.  Intros and connectors are drawn afresh (held-out combinations).
        """
        if n_per_person < 1:
            raise ValueError(f"n_per_person must be >= 1, got {n_per_person}")
        rng = random.Random(f"llmfeatures-eval-pronouns-{self.config.seed}-{seed}")
        rows = []
        for p in self.facts.people:
            for _ in range(n_per_person):
                city = rng.choice(self.facts.countries).capital
                intro = rng.choice((
                    f"{p.name} was a {p.occupation} who lived in {city}.",
                    f"Once there was a {p.occupation} named {p.name}.",
                    f"This is a story about {p.name}, a {p.occupation} from {city}.",
                ))
                prompt = f"{intro} {rng.choice(vocab.PRONOUN_CONNECTORS)}"
                rows.append((prompt, " " + p.subject, p.gender, p.name))
        return pd.DataFrame(rows, columns=["prompt", "answer", "gender", "name"])

    def eval_addition(self) -> pd.DataFrame:
        """The held-out 2-digit additions (never in any document): ``"23 + 58 ="`` -> ``" 81"``."""
        rows = [(f"{a} + {b} =", f" {a + b}", a, b) for a, b in self.heldout_additions]
        return pd.DataFrame(rows, columns=["prompt", "answer", "a", "b"])

    def eval_finetune_facts(self, include_unchanged: bool = False) -> pd.DataFrame:
        """Facts the fine-tuning shift changes: prompt, answer_before, answer_after, relation,
        subject, changed.  ``include_unchanged=True`` adds every other fact of the same relations
        (answer_before == answer_after) to measure forgetting.
        """
        changed = {(ch.relation, ch.subject): ch for ch in self.changes}
        rows = []
        for ch in self.changes:
            tpl = str(FACT_TEMPLATES[ch.relation]["eval"])
            rows.append((tpl.format(s=ch.subject), " " + ch.before, " " + ch.after, ch.relation,
                         ch.subject, True))
        if include_unchanged:
            for relation in sorted({ch.relation for ch in self.changes}):
                tpl = str(FACT_TEMPLATES[relation]["eval"])
                for s, o in self.relations[relation]:
                    if (relation, s) not in changed:
                        rows.append((tpl.format(s=s), " " + o, " " + o, relation, s, False))
        return pd.DataFrame(rows, columns=["prompt", "answer_before", "answer_after", "relation",
                                           "subject", "changed"])

    # ------------------------------------------------------------------ few-shot and POS
    def tagged_sentences(self, n: int, seed: int) -> list[list[tuple[str, str]]]:
        """``n`` generated sentences as ``(word, tag)`` lists, each holding all six POS tags."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        rng = random.Random(f"llmfeatures-tagged-{self.config.seed}-{seed}")
        return [tagged_sentence(rng) for _ in range(n)]

    def fewshot_prompts(self, family: str, task: str, n_shots: int, n_prompts: int,
                        seed: int) -> pd.DataFrame:
        """``n_prompts`` prompts with ``n_shots`` demonstrations each, in the training format.

        Columns prompt, answer, family, task, query, n_shots.  The prompt ends in ``" ->"`` and the
        answer starts with a space: ``"France -> Paris ; Japan ->"`` / ``" Tokyo"``.
        """
        check_family_task(family, task)
        if n_shots < 0 or n_prompts < 1:
            raise ValueError(
                f"need n_shots >= 0 and n_prompts >= 1; got n_shots={n_shots}, "
                f"n_prompts={n_prompts}."
            )
        rng = random.Random(
            f"llmfeatures-fewshot-eval-{self.config.seed}-{seed}-{family}-{task}-{n_shots}"
        )
        rows = []
        for _ in range(n_prompts):
            items = sample_items(rng, self.facts, family, task, n_shots + 1)
            prompt, answer = render_prompt(items)
            rows.append((prompt, answer, family, task, items[-1][0], n_shots))
        return pd.DataFrame(rows, columns=["prompt", "answer", "family", "task", "query",
                                           "n_shots"])

    def relation_pairs(self) -> pd.DataFrame:
        """All relation pairs in one frame: relation, input, output, attribute, emblem,
        input_chars, output_chars.

        ``attribute`` is the pair's shared attribute (a country's region, a person's field, a word
        pair's semantic class; :meth:`Facts.attributes`), which the corpus states for both words.
        ``emblem`` is the emblem both words share (:meth:`Facts.emblems`), None when the output
        belongs to several inputs of the relation (the euro) and so shares none; a pair that
        shares its emblem shares its colour and material too (:meth:`Facts.signs`).
        """
        attrs = self.facts.attributes()
        emblems = self.facts.emblems()

        def shared(x: str, y: str) -> str | None:
            e = emblems.get(x)
            return e if e is not None and emblems.get(y) == e else None

        rows = [(name, x, y, a, shared(x, y), len(x), len(y))
                for name, pairs in self.relations.items()
                for (x, y), a in zip(pairs, attrs[name], strict=True)]
        df = pd.DataFrame(rows, columns=["relation", "input", "output", "attribute", "emblem",
                                         "input_chars", "output_chars"])
        return _none_for_missing(df, ["emblem"])

    def summary(self) -> pd.DataFrame:
        """Documents and characters per split and domain."""
        frames = []
        for split in SPLITS:
            d = self.documents(split)
            g = d.groupby("domain")["text"].agg(docs="count", chars=lambda t: int(t.str.len().sum()))
            frames.append(g.assign(split=split).reset_index())
        return pd.concat(frames, ignore_index=True)[["split", "domain", "docs", "chars"]]


def _build_lexicon(facts: Facts) -> pd.DataFrame:
    """One row per word: word, pos, gender, entity_type, attribute, emblem, colour, material,
    n_chars (first classification wins; ``attribute`` is the region, field or word class the
    corpus states for the word, None if it states none; emblem, colour and material are its signs
    (:meth:`Facts.signs`), None for a word without an anchor)."""
    rows: dict[str, tuple[str, str | None, str]] = {}

    def add(words, pos: str, entity: str, gender: str | None = None) -> None:
        for w in words:
            rows.setdefault(w, (pos, gender, entity))

    add([c.name for c in facts.countries], "propn", "country")
    add([c.capital for c in facts.countries], "propn", "city")
    add([c.language for c in facts.countries], "propn", "language")
    add([c.currency for c in facts.countries], "noun", "currency")
    for p in facts.people:
        add([p.name], "propn", "person", p.gender)
    add(vocab.OCCUPATIONS, "noun", "occupation")
    add(vocab.INSTRUMENTS, "noun", "instrument")
    add(vocab.SPORTS, "noun", "sport")
    add([m for m, _ in vocab.MALE_FEMALE], "noun", "gendered_noun", "m")
    add([f for _, f in vocab.MALE_FEMALE], "noun", "gendered_noun", "f")
    add(["he", "him", "his"], "pronoun", "pronoun", "m")
    add(["she", "her"], "pronoun", "pronoun", "f")
    add([w for pair in vocab.SINGULAR_PLURAL for w in pair], "noun", "common_noun")
    add([w for pair in vocab.PRESENT_PAST for w in pair], "verb", "verb")
    add([w for pair in vocab.ADJECTIVE_COMPARATIVE for w in pair], "adjective", "adjective")
    add(vocab.POS_NOUNS, "noun", "common_noun")
    add(vocab.POS_ADJECTIVES, "adjective", "adjective")
    add(vocab.POS_VERBS, "verb", "verb")
    add(vocab.POS_ADVERBS + vocab.NARRATIVE_ADVERBS, "adverb", "adverb")
    add(vocab.POS_PREPOSITIONS, "preposition", "preposition")
    add(vocab.SUBJECT_PRONOUNS + vocab.OBJECT_PRONOUNS, "pronoun", "pronoun")
    add(vocab.DETERMINERS, "determiner", "determiner")
    add(vocab.PLACES, "noun", "place")
    add(vocab.CODE_FUNCS + vocab.CODE_VARS, "code", "code_identifier")
    add(vocab.CODE_CLASSES + vocab.CODE_MODULES, "code", "code_identifier")
    add(vocab.RECIPE_DISHES + vocab.RECIPE_INGREDIENTS + vocab.RECIPE_UNITS, "noun", "food")
    add(vocab.EMBLEMS + vocab.MATERIALS, "noun", "sign")
    add(vocab.COLOURS, "adjective", "sign")
    attribute: dict[str, str] = {**CAPITAL_REGION, **LANGUAGE_REGION}
    attribute.update({c.name: c.region for c in facts.countries})
    attribute.update({p.name: p.field for p in facts.people})
    for f in vocab.FIELDS:
        for w in (*vocab.FIELD_OCCUPATIONS[f], *vocab.FIELD_INSTRUMENTS[f], *vocab.FIELD_SPORTS[f]):
            attribute[w] = f
    for name, classes in vocab.WORD_CLASS.items():
        for x, y in facts.relations()[name]:
            attribute.setdefault(x, classes[x])
            attribute.setdefault(y, classes[x])
    signs = facts.signs()
    df = pd.DataFrame(
        [(w, pos, g, e, attribute.get(w), *(signs[k].get(w) for k in vocab.SIGNS), len(w))
         for w, (pos, g, e) in rows.items()],
        columns=["word", "pos", "gender", "entity_type", "attribute", *vocab.SIGNS, "n_chars"],
    )
    return _none_for_missing(df, ["gender", "attribute", *vocab.SIGNS])


def _none_for_missing(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Store missing values of ``columns`` as ``None`` (object dtype), not as NaN."""
    for col in columns:
        values = df[col].tolist()
        df[col] = pd.Series([v if isinstance(v, str) else None for v in values], dtype=object,
                            index=df.index)
    return df


def build_world(config: WorldConfig | None = None, scale: str | None = None) -> World:
    """The world of ``config``, or of the preset for ``scale`` (default: the scale in force)."""
    if config is None:
        config = pick(WORLD_PRESETS, scale)
    elif not isinstance(config, WorldConfig):
        raise ValueError(f"config must be a WorldConfig, got {type(config).__name__}")
    return World(config)


__all__ = [
    "DOMAINS",
    "FINETUNE_DOMAINS",
    "GROUPS",
    "SPLITS",
    "WORLD_PRESETS",
    "Change",
    "World",
    "WorldConfig",
    "build_world",
]
