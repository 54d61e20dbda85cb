"""Tests of the organism's world: determinism, relations, domains, ground truth, few-shot format."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pytest

from llmfeatures.organism import WORLD_PRESETS, World, WorldConfig, build_world
from llmfeatures.organism.corpus import Corpus
from llmfeatures.organism.world import DOMAINS, SPLITS

REQUIRED_RELATIONS = (
    "country_capital", "country_currency", "country_language", "person_occupation",
    "person_instrument", "singular_plural", "present_past", "male_female",
    "adjective_comparative",
)
PRONOUN_GENDER = {"he": "m", "him": "m", "his": "m", "she": "f", "her": "f", "hers": "f"}


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(scale="ci")


def _digest(w: World) -> str:
    h = hashlib.sha256()
    for split in SPLITS:
        for text in w.texts(split):
            h.update(text.encode())
            h.update(b"\0")
    return h.hexdigest()


def _parse_items(text: str) -> list[tuple[str, str]]:
    """Parse a few-shot document written in the training format (independent of the generator)."""
    items = []
    for chunk in text.split(" ; "):
        x, sep, y = chunk.rpartition(" -> ")
        assert sep, f"item without arrow: {chunk!r}"
        items.append((x, y))
    return items


def _bitwise_reference(op: str, a: str, b: str) -> str:
    """Bit by bit on the strings, with no integer arithmetic shared with the package."""
    rules = {
        "and": lambda u, v: u == v == "1", "or": lambda u, v: "1" in (u, v),
        "xor": lambda u, v: u != v, "nand": lambda u, v: not u == v == "1",
        "nor": lambda u, v: "1" not in (u, v), "xnor": lambda u, v: u == v,
        "null": lambda u, v: u == "1",
    }
    return "".join("1" if rules[op](u, v) else "0" for u, v in zip(a, b, strict=True))


def _check_answer(w: World, family: str, task: str, x: str, y: str) -> None:
    if family == "relation":
        if task == "null":
            assert y == x
        else:
            assert (x, y) in set(w.relations[task])
    elif family == "bitwise":
        a, b = x.split()
        assert len(a) == len(b) == 5 and set(a + b) <= {"0", "1"}
        assert y == _bitwise_reference(task, a, b)
    else:
        words = x.replace(",", " ,").split()
        if task == "null":
            assert y == words[0]
        else:
            pos = dict(zip(w.lexicon.word, w.lexicon.pos))
            first = next(word for word in words if pos.get(word) == task)
            assert y == first


# ---------------------------------------------------------------------------- determinism, sizes
def test_same_config_same_texts_and_seed_changes_them(world: World) -> None:
    again = build_world(WORLD_PRESETS["ci"])
    assert _digest(again) == _digest(world)
    other = build_world(WorldConfig(seed=1, n_train_docs=150, n_val_docs=20, n_finetune_docs=20,
                                    n_finetune_val_docs=10))
    assert other.texts("train") != build_world(
        WorldConfig(seed=0, n_train_docs=150, n_val_docs=20, n_finetune_docs=20,
                    n_finetune_val_docs=10)).texts("train")


def test_split_sizes_follow_config(world: World) -> None:
    c = world.config
    assert len(world.documents("train")) == c.n_train_docs
    assert len(world.documents("val")) == c.n_val_docs
    assert len(world.documents("finetune_train")) == c.n_finetune_docs
    assert len(world.documents("finetune_val")) == c.n_finetune_val_docs
    chars = sum(map(len, world.texts("train")))
    assert 100_000 < chars < 1_000_000  # ci corpus: a few hundred KB
    assert len(set(world.texts("train"))) > 0.95 * c.n_train_docs


# ---------------------------------------------------------------------------- relations, lexicon
def test_relations_count_and_pairs(world: World) -> None:
    assert len(world.relations) >= 9
    for name in REQUIRED_RELATIONS:
        assert name in world.relations
    assert "person_sport" in world.relations or "person_instrument" in world.relations
    for name, pairs in world.relations.items():
        assert len(pairs) >= 20, name
        assert len(set(x for x, _ in pairs)) == len(pairs), f"{name}: inputs repeat"
        assert all(" " not in x and " " not in y for x, y in pairs), name


def test_word_lengths_vary_within_each_relation(world: World) -> None:
    for name, pairs in world.relations.items():
        in_lens = [len(x) for x, _ in pairs]
        out_lens = [len(y) for _, y in pairs]
        assert max(in_lens) - min(in_lens) >= 3, name
        assert max(out_lens) - min(out_lens) >= 3, name
        diffs = {len(x) - len(y) for x, y in pairs}
        assert len(diffs) >= 3, f"{name}: length difference nearly constant"
    frame = world.relation_pairs()
    assert len(frame) == sum(len(p) for p in world.relations.values())
    assert (frame.output_chars == frame.output.str.len()).all()


def test_lexicon_ground_truth(world: World) -> None:
    lex = world.lexicon
    assert list(lex.columns) == ["word", "pos", "gender", "entity_type", "attribute", "emblem",
                                 "colour", "material", "n_chars"]
    assert lex.word.is_unique
    assert (lex.n_chars == lex.word.str.len()).all()
    by_word = lex.set_index("word")
    for row in world.people.itertuples():
        assert by_word.loc[row.name, "gender"] == row.gender
        assert by_word.loc[row.name, "entity_type"] == "person"
    for row in world.countries.itertuples():
        assert by_word.loc[row.country, "entity_type"] == "country"
        assert by_word.loc[row.capital, "entity_type"] == "city"
    for m, f in world.relations["male_female"]:
        assert (by_word.loc[m, "gender"], by_word.loc[f, "gender"]) == ("m", "f")
    assert {"noun", "verb", "adjective", "adverb", "preposition", "pronoun"} <= set(lex.pos)
    assert set(world.people.gender) == {"m", "f"}
    assert set(lex.gender.dropna()) == {"m", "f"} and lex.gender.isna().any()
    assert len(lex) < 5000


# ---------------------------------------------------------------------------- domains
def test_every_domain_present_one_per_document(world: World) -> None:
    for split in ("train", "val"):
        docs = world.documents(split)
        assert set(docs.domain) == set(DOMAINS)
        assert list(docs.doc_id) == list(range(len(docs)))
    fine = world.documents("finetune_train")
    assert "recipe" in set(fine.domain) and "recipe" not in set(world.documents("train").domain)
    docs = world.documents("train")
    # each domain has its own syntax: markers of one domain do not occur in the others
    markers = {"chat": "Assistant:", "code": r"def |print\(|import |for [\w, ]+ in |assert ",
               "fewshot": " -> ", "arithmetic": r"(?m)^\d\d \+ \d\d[ :]",
               "bitwise": r"(?m)^(?:[01]{5} [A-Z]+ [01]{5}|[A-Z]+ [01]{2}:)",
               "wordgame": r"letters|The word \w+ is (?:short|medium|long)\."}
    for domain, pattern in markers.items():
        has = docs.text.str.contains(pattern, regex=True)
        assert has[docs.domain == domain].mean() > 0.9, domain
        assert has[docs.domain != domain].mean() < 0.05, domain
    few = docs[docs.domain == "fewshot"]
    assert few.family.notna().all() and few.task.notna().all()
    assert docs[docs.domain != "fewshot"].family.isna().all()
    assert set(few.family) == set(world.fewshot_families)
    genders = dict(zip(world.people.name, world.people.gender))
    persons = docs[(docs.domain == "encyclopedia") & docs.subject.isin(list(genders))]
    assert len(persons) >= len(genders)  # the round-robin visits every person
    assert (persons.gender == persons.subject.map(genders)).all()
    countries = docs[(docs.domain == "encyclopedia") & docs.subject.isin(list(world.countries.country))]
    assert set(countries.subject) == set(world.countries.country)


def test_narrative_pronouns_agree_with_protagonist(world: World) -> None:
    docs = world.documents("train")
    nar = docs[docs.domain == "narrative"]
    assert len(nar) > 100
    genders = dict(zip(world.people.name, world.people.gender))
    with_pronoun = 0
    for row in nar.itertuples():
        assert row.gender in ("m", "f")
        assert row.subject in row.text
        if row.subject in genders:
            assert genders[row.subject] == row.gender
        found = [w.lower() for w in re.findall(r"[A-Za-z]+", row.text)
                 if w.lower() in PRONOUN_GENDER]
        assert all(PRONOUN_GENDER[p] == row.gender for p in found), row.text
        with_pronoun += len(found) >= 3
    assert with_pronoun / len(nar) > 0.95


def test_facts_appear_often_and_heldout_prompts_never(world: World) -> None:
    text = "\n".join(world.texts("train"))
    facts = world.eval_facts()
    assert len(facts) == sum(len(p) for p in world.relations.values())
    counts = [text.count(p + a + ".") for p, a in zip(facts.prompt, facts.answer)]
    assert min(counts) >= 2
    for p in world.eval_facts(heldout_templates=True).prompt:
        assert p not in text
    assert world.eval_facts().loc[lambda d: d.subject == "France", "prompt"].iloc[0] == \
        "The capital of France is"


# ---------------------------------------------------------------------------- evaluation sets
def test_eval_sets_format_and_truth(world: World) -> None:
    for frame, col in ((world.eval_facts(), "answer"), (world.eval_pronouns(), "answer"),
                       (world.eval_addition(), "answer"), (world.eval_finetune_facts(),
                                                           "answer_after")):
        assert len(frame) > 0
        assert not frame.prompt.str.endswith(" ").any()
        assert frame[col].str.match(r"^ \S").all()
    pron = world.eval_pronouns()
    genders = dict(zip(world.people.name, world.people.gender))
    assert (pron.gender == pron.name.map(genders)).all()
    assert (pron.answer == pron.gender.map({"m": " he", "f": " she"})).all()
    add = world.eval_addition()
    assert all(int(a) == x + y for a, x, y in zip(add.answer, add.a, add.b))
    assert add.a.between(10, 99).all() and add.b.between(10, 99).all()
    corpus = "\n".join(t for s in SPLITS for t in world.texts(s))
    for x, y in zip(add.a, add.b):
        assert f"{x} + {y} " not in corpus and f"{y} + {x} " not in corpus
        assert f"Add {x} and {y}" not in corpus and f"add {x} and {y}" not in corpus
        assert f"{x} + {y}:" not in corpus and f"= {x} + {y}\n" not in corpus


def test_finetune_shift_changes_facts(world: World) -> None:
    ft = world.eval_finetune_facts()
    assert len(ft) >= 4 and ft.changed.all()
    assert (ft.answer_before != ft.answer_after).all()
    train = "\n".join(world.texts("train"))
    fine = "\n".join(world.texts("finetune_train"))
    for p, before, after in zip(ft.prompt, ft.answer_before, ft.answer_after):
        assert p + before + "." in train and p + after + "." not in train
        assert p + after + "." in fine and p + before + "." not in fine
    full = world.eval_finetune_facts(include_unchanged=True)
    same = full[~full.changed]
    assert len(same) > len(ft) and (same.answer_before == same.answer_after).all()


# ---------------------------------------------------------------------------- few-shot, POS
def test_tagged_sentences_hold_all_six_tags(world: World) -> None:
    sents = world.tagged_sentences(50, seed=3)
    assert sents == world.tagged_sentences(50, seed=3)
    pos = dict(zip(world.lexicon.word, world.lexicon.pos))
    for s in sents:
        tags = {t for _, t in s}
        assert {"noun", "adjective", "verb", "adverb", "preposition", "pronoun"} <= tags
        for word, tag in s:
            if tag in {"noun", "adjective", "verb", "adverb", "preposition", "pronoun"}:
                assert pos[word] == tag, (word, tag)
    firsts = {next(i for i, (_, t) in enumerate(s) if t == "noun") for s in sents}
    assert len(firsts) >= 3  # the first noun is not always at the same position


def test_fewshot_prompts_match_training_format_and_are_correct(world: World) -> None:
    train = world.documents("train")
    few = train[train.domain == "fewshot"]
    for row in few.itertuples():  # the training documents themselves are correct
        for x, y in _parse_items(row.text):
            _check_answer(world, row.family, row.task, x, y)
    for family, tasks in world.fewshot_families.items():
        assert "null" in tasks
        for task in tasks:
            df = world.fewshot_prompts(family, task, n_shots=4, n_prompts=5, seed=0)
            assert len(df) == 5 and set(df.task) == {task} and set(df.family) == {family}
            for prompt, answer in zip(df.prompt, df.answer):
                assert prompt.endswith(" ->") and answer.startswith(" ")
                assert not answer.startswith("  ")
                items = _parse_items(prompt + answer)
                assert len(items) == 5
                assert " ; ".join(f"{x} -> {y}" for x, y in items) == prompt + answer
                for x, y in items:
                    _check_answer(world, family, task, x, y)
    expected_pos = {"noun", "adjective", "verb", "adverb", "preposition", "pronoun", "null"}
    assert set(world.fewshot_families["pos"]) == expected_pos
    assert set(world.fewshot_families["bitwise"]) == {"and", "nand", "or", "nor", "xor", "xnor",
                                                      "null"}
    assert set(world.fewshot_families["relation"]) == set(world.relations) | {"null"}
    zero = world.fewshot_prompts("relation", "country_capital", 0, 3, seed=1)
    assert all(" ; " not in p and p.endswith(" ->") for p in zero.prompt)
    a = world.fewshot_prompts("bitwise", "xor", 4, 20, seed=7)
    assert a.equals(world.fewshot_prompts("bitwise", "xor", 4, 20, seed=7))
    assert not a.equals(world.fewshot_prompts("bitwise", "xor", 4, 20, seed=8))


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"n_train_docs": 0}, ["n_train_docs", ">="]),
        ({"n_train_docs": 20}, ["n_train_docs", "too small"]),
        ({"n_val_docs": 1}, ["n_val_docs", ">="]),
        ({"domain_weights": (1.0, 1.0)}, ["domain_weights", "narrative"]),
        ({"min_fewshot_items": 5, "max_fewshot_items": 2}, ["min_fewshot_items"]),
        ({"n_capital_swaps": 40}, ["n_capital_swaps", "at most"]),
    ],
)
def test_bad_config_raises_clear_error(kwargs: dict, words: list[str]) -> None:
    with pytest.raises(ValueError) as err:
        build_world(WorldConfig(**kwargs))
    for word in words:
        assert word in str(err.value)


def test_bad_requests_raise_clear_errors(world: World) -> None:
    with pytest.raises(ValueError, match="valid splits: train, val"):
        world.documents("test")
    with pytest.raises(ValueError, match="valid families: relation, pos, bitwise"):
        world.fewshot_prompts("sentiment", "null", 4, 2, seed=0)
    with pytest.raises(ValueError, match="valid tasks: .*xnor"):
        world.fewshot_prompts("bitwise", "add", 4, 2, seed=0)
    with pytest.raises(ValueError, match="n_shots <="):
        world.fewshot_prompts("relation", "country_capital", 100, 2, seed=0)
    with pytest.raises(ValueError, match="n_prompts"):
        world.fewshot_prompts("pos", "noun", 4, 0, seed=0)
    with pytest.raises(ValueError, match="Valid scales"):
        build_world(scale="huge")
    with pytest.raises(ValueError, match="WorldConfig"):
        build_world({"n_train_docs": 100})  # type: ignore[arg-type]


def test_entity_articles_open_with_canonical_facts(world):
    """The eval prompts start right after <|bos|>, so training documents must also open with the
    canonical fact sentences (about half of the single-entity articles do)."""
    docs = world.documents("train").query("domain == 'encyclopedia'")
    opened, titled = set(), set()
    people = world.people.set_index("name")
    countries = world.countries.set_index("country")
    for text, subject in zip(docs["text"], docs["subject"]):
        if subject in people.index:
            p = people.loc[subject]
            canonical = [f"{subject} works as a {p.occupation}.",
                         f"{subject} plays the {p.instrument}.",
                         f"The favourite sport of {subject} is {p.sport}."]
            title = f"{subject} is a person."
        elif subject in countries.index:
            c = countries.loc[subject]
            canonical = [f"The capital of {subject} is {c.capital}.",
                         f"The language of {subject} is {c.language}.",
                         f"The currency of {subject} is the {c.currency}."]
            art = "an" if c.region[0] in "aeiou" else "a"
            title = f"{subject} is {art} {c.region} country."
        else:
            continue
        text = _without_cards(world, text)
        if text.startswith(title):
            titled.add(subject)
        else:  # no title: the article opens with all three canonical sentences, in some order
            head = text.split(". ")[:3]
            assert sorted(h.rstrip(".") + "." for h in head) == sorted(canonical), text
            opened.add(subject)
    n_entities = len(world.people) + len(world.countries)
    assert len(opened) >= 0.3 * n_entities and len(titled) >= 0.3 * n_entities


# ---------------------------------------------------------------------------- second generation
def test_domain_groups_without_leaks(world: World) -> None:
    """Formal domains (arithmetic, bitwise, code) and prose domains are told apart by the ground
    truth; no prose document carries formal material (digits, sums, bit strings)."""
    docs = world.documents("train")
    assert set(docs.group) == {"formal", "prose"}
    formal = {"arithmetic", "bitwise", "code"}
    not_few = docs[docs.domain != "fewshot"]
    assert ((not_few.group == "formal") == not_few.domain.isin(formal)).all()
    few = docs[docs.domain == "fewshot"]
    assert ((few.group == "formal") == (few.family == "bitwise")).all()
    prose = docs[(docs.group == "prose") & (docs.domain != "fewshot")]
    assert not prose.text.str.contains(r"\d").any()
    chat = docs[docs.domain == "chat"]
    assert not chat.text.str.contains(r"\+|=").any()
    # the formal domains share vocabulary: code computes sums and bit operations too
    code = docs[docs.domain == "code"].text
    assert code.str.contains(r"= \d\d \+ \d\d").any() and code.str.contains(r"0b[01]{5}").any()


def test_shared_attributes_in_ground_truth_and_corpus(world: World) -> None:
    """Every relation pair has an attribute that the corpus states for both of its words, in
    sentences that do not state the relation."""
    pairs = world.relation_pairs()
    assert pairs.attribute.notna().all()
    for rel, group in pairs.groupby("relation"):
        assert group.attribute.nunique() >= 4, rel
    text = " ".join(world.texts("train"))
    people = world.people.set_index("name")
    for row in world.people.itertuples():
        assert f"{row.name} works in {row.field}." in text
        assert f"The {row.occupation} works in {row.field}." in text
        assert f"The {row.instrument} belongs to {row.field}." in text
        assert f"{row.sport.capitalize()} is a sport of {row.field}." in text
    assert people.groupby("field").size().min() >= 5
    for row in world.countries.itertuples():
        art = "an" if row.region[0] in "aeiou" else "a"
        assert f"{row.country} is {art} {row.region} country." in text
        assert f"{row.capital} is {art} {row.region} city." in text
    # the class articles cycle through their words; at the ci size nearly all are visited
    for rel in ("singular_plural", "present_past", "male_female", "adjective_comparative"):
        stated = [f"The word {w} is a word of {row.attribute}." in text
                  for row in pairs[pairs.relation == rel].itertuples()
                  for w in (row.input, row.output)]
        assert sum(stated) >= 0.85 * len(stated), rel
    # the lexicon carries the attribute of every word whose attribute the corpus states
    lex = world.lexicon.set_index("word")
    for row in pairs.itertuples():
        assert lex.loc[row.input, "attribute"] == row.attribute, row
    # attribute sentences never name the other member of a pair
    for sent in re.findall(r"[^.]* is a word of \w+\.", text)[:2000]:
        words = set(re.findall(r"[a-z]+", sent))
        assert not any(x in words and y in words for x, y in world.relations["singular_plural"])


def test_word_game_states_lengths_and_varies_them(world: World) -> None:
    docs = world.documents("train")
    game = " ".join(docs[docs.domain == "wordgame"].text)
    counts = re.findall(r"The word (\w+) has (\w+) letters\.", game)
    assert len(counts) > 50
    numbers = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
               "fourteen fifteen").split()
    assert all(numbers.index(n) == len(w) for w, n in counts)
    for w, spelled in re.findall(r"(\w+) is spelled ([\w-]+),", game):
        assert spelled.replace("-", "") == w
    # comparisons are answered at the end ("first"/"second"), so the answer needs both lengths
    questions = re.findall(r"(\w+) or (\w+): the (longer|shorter) is the (first|second)\.", game)
    assert len(questions) > 50 and {q[2] for q in questions} == {"longer", "shorter"}
    for a, b, kind, pos in questions:
        answer = a if pos == "first" else b
        assert len(a) != len(b)
        assert answer == (max if kind == "longer" else min)((a, b), key=len), (a, b, kind, pos)
    # both answers occur: "first" is not always right
    assert 0.3 < np.mean([pos == "first" for *_, pos in questions]) < 0.7
    sorted_lists = re.findall(r"By length: ([\w, ]+)\.", game)
    assert len(sorted_lists) > 50
    for lst in sorted_lists:
        lengths = [len(w) for w in lst.split(", ")]
        assert len(lengths) >= 3 and lengths == sorted(set(lengths)), lst
    assert len({len(w) for w, _ in counts}) >= 6


def test_echo_sentences_follow_a_word_with_its_attribute(world: World) -> None:
    """Echo sentences put a follower of the word's attribute right after the word, so the
    attribute must be carried at the word itself; the word-game lists put its length there."""
    from llmfeatures.organism import vocab

    text = " ".join(world.texts("train"))
    lex = world.lexicon.set_index("word")
    follower_of = {f: a for a, fs in vocab.ATTRIBUTE_FOLLOWERS.items() for f in fs}
    pattern = r"(?:^|\. |The |They |the )(\w+) (" + "|".join(follower_of) + r")\b"
    found = re.findall(pattern, text)
    assert len(found) > 500
    checked = 0
    for word, follower in found:
        if word in lex.index and lex.loc[word, "attribute"] is not None:
            assert lex.loc[word, "attribute"] == follower_of[follower], (word, follower)
            checked += 1
    assert checked > 0.9 * len(found)
    numbers = vocab.NUMBER_WORDS
    lists = re.findall(r"Lengths: ([^.]+)\.", text)
    assert len(lists) > 20
    for item in ", ".join(lists).split(", "):
        w, n = item.split(" ")
        assert numbers.index(n) == len(w)


def _without_cards(world: World, text: str) -> str:
    """``text`` without the sign cards that open it (each ``word items.`` with exactly the
    word's card items)."""
    cards = Corpus(world.facts, frozenset()).cards
    while True:
        head, sep, rest = text.partition(". ")
        words = head.rstrip(".").split(" ")
        if not sep or words[0] not in cards or sorted(words[1:]) != sorted(cards[words[0]]):
            return text
        text = rest


def test_cards_open_documents_with_what_a_word_shares(world: World) -> None:
    """Cards open narratives and articles; each states its word's type tag, attribute and signs,
    which (for a one-to-one pair) the partner's card shares apart from the tag and length."""
    cards = Corpus(world.facts, frozenset()).cards
    assert cards["Paris"][0] == "town" and cards["France"][0] == "nation"
    signs = world.facts.signs()
    shared = set(cards["Paris"]) & set(cards["France"])
    assert {signs[k]["France"] for k in signs} <= shared
    docs = world.documents("train")
    opened = [t for t, d in zip(docs.text, docs.domain)
              if d in ("narrative", "encyclopedia") and _without_cards(world, t) != t]
    n = docs.domain.isin(["narrative", "encyclopedia"]).sum()
    rate = world.config.card_rate
    assert abs(len(opened) / n - rate) < 0.1, (len(opened), n, rate)
    assert not any(_without_cards(world, t) != t for t, d in zip(docs.text, docs.domain)
                   if d not in ("narrative", "encyclopedia"))


def test_signs_shared_by_pairs_and_listed_apart(world: World) -> None:
    """Every anchor has an emblem of its own and a colour and material; an output that belongs
    to one anchor alone shares all three; the corpus states signs only in lists whose words have
    distinct anchors (so no pair is stated), and a sign word occurs nowhere else."""
    from llmfeatures.organism import vocab

    signs = world.facts.signs()
    emblems = signs["emblem"]
    anchors = world.facts.anchors()
    assert len({emblems[a] for a in anchors}) == len(anchors)  # one emblem per anchor
    for kind in ("colour", "material"):  # a dozen values, each used about equally often
        counts = pd.Series([signs[kind][a] for a in anchors]).value_counts()
        assert len(counts) == len(vocab.SIGNS[kind][1]) and counts.max() - counts.min() <= 1
    pairs = world.relation_pairs()
    same = [all(signs[k].get(x) == signs[k].get(y) is not None for k in signs)
            for x, y in zip(pairs.input, pairs.output)]
    assert (pairs.emblem.notna() == same).all()
    by_rel = pairs.groupby("relation").emblem.apply(lambda e: e.notna().mean())
    for rel in ("country_capital", "singular_plural", "present_past", "male_female",
                "adjective_comparative"):
        assert by_rel[rel] == 1.0, rel
    assert emblems.get("euro") is None  # the currency of seven countries shares none
    assert by_rel["country_currency"] < 1.0
    lex = world.lexicon.set_index("word")
    for kind in signs:
        assert lex.loc["Paris", kind] == lex.loc["France", kind] == signs[kind]["France"]
    sign_words = {w for _, values in vocab.SIGNS.values() for w in values}
    assert sign_words <= set(lex.index)

    titles = {title: kind for kind, (title, _) in vocab.SIGNS.items()}
    pattern = r"(" + "|".join(titles) + r"): ([^.]*)\."
    seen = dict.fromkeys(titles, 0)
    for text in world.texts("train"):
        for title, body in re.findall(pattern, text):
            seen[title] += 1
            items = [item.split(" ") for item in body.split(", ")]
            assert all(signs[titles[title]][w] == v for w, v in items), body
            assert len({emblems[w] for w, _ in items}) == len(items), body  # distinct anchors
        rest = re.sub(pattern, "", _without_cards(world, text))
        assert not sign_words & set(re.findall(r"[a-z]+", rest)), text
    assert min(seen.values()) > 30, seen
    # the shifted world: a swapped capital takes the signs of its new country
    shifted = world.shifted_facts.signs()
    for ch in world.changes:
        if ch.relation == "country_capital":
            assert all(shifted[k][ch.after] == signs[k][ch.subject] for k in signs)
