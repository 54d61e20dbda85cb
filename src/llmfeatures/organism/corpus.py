"""Document generators, one per domain, each with its own vocabulary and syntax.

- ``narrative``: short stories about one person (or one gendered noun such as "the king"); every
  pronoun refers to that protagonist and agrees with its gender.  Connectors such as
  ``"Later that day,"`` are always followed by a lower-case subject pronoun.
- ``encyclopedia``: facts in several templates (``"The capital of France is Paris."``); a document
  is either about one entity or a list over one relation.  Entities are visited round-robin, so
  every fact appears in about the same number of documents.  Half of the single-entity articles
  open with the entity's canonical fact sentences (``"Al plays the trumpet. Al works as a ..."``)
  instead of a title line, so the canonical prompts are also trained right after ``<|bos|>``,
  where the evaluation asks them.
- ``wordgame``: prose about spelling: how many letters a word has (as a word: "five"), the word
  spelled out, short/medium/long words, comparisons answered at the end ("Oslo or Norway: the
  shorter is the first.") and words sorted by length ("By length: Rome, Paris, Norway.").
  Comparing and sorting need an ordered length, not six unrelated length classes; it gives the
  model a reason to represent word length, the distractor of chapter 3.
- ``arithmetic``: 2-digit additions, plain and worked; ``bitwise``: 5-bit bitwise operations.
- ``code``: small Python snippets, which also compute sums and bitwise operations, so the three
  formal domains share vocabulary (digits, ``=``, operators) and syntax.
- ``chat``: ``User:``/``Assistant:`` dialogues about the world (prose only: no sums).
- ``recipe``: held out of pre-training; only the fine-tuning distribution has it.

The domains form two groups (:data:`DOMAIN_GROUPS`): *formal* (arithmetic, bitwise, code) and
*prose* (narrative, encyclopedia, chat, wordgame), as code and mathematics differ from text in
The Pile.  No prose document contains a digit and no formal document an English sentence beyond
a worked-step label or a code comment.  Few-shot documents belong to the group of their family.

Shared attributes (:mod:`llmfeatures.organism.vocab`): the encyclopedia has articles on each
region, field and word class, one sentence per member word in a shuffled order ("Rome is a
western city.", "The word geese is a word of animals."), so both members of a relation pair are
described with the same attribute word, but the pair itself is never stated there.  *Echo
sentences* ("Oslo froze again.", "The nurse healed all day."), sprinkled into narratives and at the
end of encyclopedia articles about other things, put a follower of the word's attribute right
after the word, so predicting the next token needs the attribute at the word itself.  In the same
way the word game's length lists ("Lengths: Paris five, Rome four.") put a word's length right
after it.

*Signs* (:meth:`Facts.signs`): every anchor (a country, a person, the first word of a word pair)
has an emblem of its own and one of a dozen colours and materials, which each partner belonging to
it alone shares.  Sign lists ("Emblems: Paris owl, geese lantern, Kenji anchor.", "Colours: ...")
close most encyclopedia articles and some narratives; each word is followed at once by its sign,
and no list holds two words of one anchor.  Sign words occur nowhere else.

*Sign cards* (:meth:`Corpus.sign_card`) open most narratives and encyclopedia articles
(``WorldConfig.card_rate``): one to three cards ``word <items in a random order>.``, the items being
the word's type tag (a word used nowhere else, such as ``town`` for a capital), its attribute and
its signs.  A word right after ``<|bos|>``, where chapter 3 reads words alone, is then followed by
what it shares with its partner.

Every generator takes a ``random.Random`` and returns ``(text, meta)`` where ``meta`` is the ground
truth (subject, gender) of the document.  Additions listed in ``Corpus.heldout_additions`` never
appear in any generated text, so the addition evaluation is truly held out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from llmfeatures.organism import vocab
from llmfeatures.organism.facts import RELATION_NAMES, Country, Facts, Person
from llmfeatures.organism.fewshot import BITWISE_OPS, bits, bitwise

# the two-level domain hierarchy; few-shot documents take the group of their family
DOMAIN_GROUPS: dict[str, str] = {
    "narrative": "prose", "encyclopedia": "prose", "chat": "prose", "wordgame": "prose",
    "arithmetic": "formal", "bitwise": "formal", "code": "formal", "recipe": "prose",
}
FEWSHOT_GROUPS: dict[str, str] = {"relation": "prose", "pos": "prose", "bitwise": "formal"}

# the region of every capital and of every language spoken in one region only (languages such
# as Spanish, spoken in countries of several regions, get no region sentence)
CAPITAL_REGION: dict[str, str] = {row[1]: vocab.COUNTRY_REGION[row[0]] for row in vocab.COUNTRIES}
_lang_regions: dict[str, set[str]] = {}
for _row in vocab.COUNTRIES:
    _lang_regions.setdefault(_row[3], set()).add(vocab.COUNTRY_REGION[_row[0]])
LANGUAGE_REGION: dict[str, str] = {k: next(iter(v)) for k, v in _lang_regions.items()
                                   if len(v) == 1}

# fact templates per relation: "eval" is the completion prompt (also used in training),
# "train" are the statement templates of the corpus, "heldout" a prompt never used in training.
FACT_TEMPLATES: dict[str, dict[str, object]] = {
    "country_capital": {
        "eval": "The capital of {s} is",
        "train": ("{o} is the capital of {s}.", "The capital city of {s} is {o}.",
                  "{s} has its capital in {o}."),
        "heldout": "{s}'s capital is",
    },
    "country_currency": {
        "eval": "The currency of {s} is the",
        "train": ("In {s}, people pay with the {o}.", "The {o} is the money of {s}."),
        "heldout": "{s}'s currency is the",
    },
    "country_language": {
        "eval": "The language of {s} is",
        "train": ("People in {s} speak {o}.", "In {s}, most people speak {o}."),
        "heldout": "{s}'s language is",
    },
    "person_occupation": {
        "eval": "{s} works as a",
        "train": ("By trade, {s} is a {o}.", "{s} earns a living as a {o}."),
        "heldout": "By profession, {s} is a",
    },
    "person_instrument": {
        "eval": "{s} plays the",
        "train": ("The instrument of {s} is the {o}.", "{s} practises the {o} every day."),
        "heldout": "{s}'s instrument is the",
    },
    "person_sport": {
        "eval": "The favourite sport of {s} is",
        "train": ("{s} is very good at {o}.", "On weekends, {s} enjoys {o}."),
        "heldout": "{s}'s favourite sport is",
    },
    "singular_plural": {
        "eval": "The plural of {s} is",
        "train": ("One {s}, two {o}.", "We say one {s} but many {o}."),
        "heldout": "In the plural, {s} becomes",
    },
    "present_past": {
        "eval": "The past tense of {s} is",
        "train": ("Today I {s}, yesterday I {o}.", "The verb {s} becomes {o} in the past."),
        "heldout": "In the past tense, {s} becomes",
    },
    "male_female": {
        "eval": "The female form of {s} is",
        "train": ("The word {s} becomes {o} for a woman.", "He is a {s} and she is a {o}."),
        "heldout": "For a woman, {s} becomes",
    },
    "adjective_comparative": {
        "eval": "The comparative of {s} is",
        "train": ("Something more {s} is {o}.", "Good, better; {s}, {o}."),
        "heldout": "More {s} means",
    },
}


# share of single-entity encyclopedia articles that open with the entity's canonical fact
# sentences (no title line), so the eval prompts' position right after <|bos|> is trained too
LEAD_WITH_FACTS = 0.5


def fact_sentence(relation: str, subject: str, obj: str, rng: random.Random | None = None) -> str:
    """A statement of one fact: the eval template completed, or (with ``rng``) a random template."""
    tpl = FACT_TEMPLATES[relation]
    if rng is None or rng.random() < 0.5:
        return f"{tpl['eval']} {{o}}.".format(s=subject, o=obj)
    return rng.choice(tpl["train"]).format(s=subject, o=obj)  # type: ignore[union-attr]


def a_an(word: str) -> str:
    """``word`` with its indefinite article: ``"a western"``, ``"an asian"``."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass
class Corpus:
    """Generates documents of every domain from one set of facts.

    ``heldout_additions`` are ``(a, b)`` pairs that no document may contain (in either order).
    ``focus`` lists subjects the encyclopedia returns to more often (the fine-tuning shift).
    """

    facts: Facts
    heldout_additions: frozenset[tuple[int, int]]
    focus: tuple[str, ...] = ()
    sign_rate: float = 0.0
    card_rate: float = 0.0
    _enc_counter: int = 0
    _word_chunks: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        rel = self.facts.relations()
        for name in RELATION_NAMES[6:]:
            pairs = rel[name]
            for i in range(0, len(pairs), 6):
                self._word_chunks.append((name, pairs[i : i + 6]))
        self._relations = rel
        # members of every attribute value: {(kind, value): [sentence, ...]}, one per word
        # (countries and people are described in their own articles)
        members: dict[tuple[str, str], list[str]] = {}
        for capital, region in CAPITAL_REGION.items():
            members.setdefault(("region", region), []).append(f"{capital} is {a_an(region)} city.")
        for language, region in LANGUAGE_REGION.items():
            members.setdefault(("region", region), []).append(
                f"{language} is {a_an(region)} language.")
        for f in vocab.FIELDS:
            members[("field", f)] = [f"The {o} works in {f}." for o in vocab.FIELD_OCCUPATIONS[f]]
            members[("field", f)] += [f"The {i} belongs to {f}." for i in vocab.FIELD_INSTRUMENTS[f]]
            members[("field", f)] += [f"{_cap(x)} is a sport of {f}." for x in vocab.FIELD_SPORTS[f]]
        for name in RELATION_NAMES[6:]:
            for x, y in rel[name]:
                k = vocab.WORD_CLASS[name][x]
                members.setdefault(("class", k), []).extend(
                    f"The word {w} is a word of {k}." for w in (x, y))
        self._attribute_members = members
        self._attribute_turn = dict.fromkeys(members, 0)
        self._echo = self._echo_table()
        self._echo_words = sorted(self._echo)
        self._signs = self.facts.signs()
        self._emblem_of = self._signs["emblem"]
        self._sign_words = sorted(self._emblem_of)
        # what a card states after each relation word: its type tag, its attribute, its signs
        attrs = self.facts.attributes()
        card: dict[str, list[str]] = {}
        for name, pairs in rel.items():
            tags = vocab.TYPE_TAGS[name]
            for (x, y), a in zip(pairs, attrs[name], strict=True):
                for w, tag in ((x, tags[0]), (y, tags[1])):
                    card.setdefault(w, [tag, a, *(self._signs[k][w] for k in vocab.SIGNS
                                                   if w in self._signs[k])])
        self._card = card
        self._card_words = sorted(card)
        game = {w for pairs in rel.values() for pair in pairs for w in pair}
        self._game_words = sorted(w for w in game if w.isalpha() and len(w) < len(vocab.NUMBER_WORDS))

    # ----------------------------------------------------------------- echo sentences
    def _echo_table(self) -> dict[str, tuple[str, str]]:
        """``{word: (template, attribute)}`` for every word with a stated attribute; the template
        puts the word right before one of its attribute's followers (``{w}``, ``{f}``)."""
        table: dict[str, tuple[str, str]] = {}
        for c in self.facts.countries:
            table[c.name] = ("{w} {f} {t}.", c.region)
        for capital, region in CAPITAL_REGION.items():
            table[capital] = ("{w} {f} {t}.", region)
        for language, region in LANGUAGE_REGION.items():
            table[language] = ("{w} {f} {t}.", region)
        for p in self.facts.people:
            table[p.name] = ("{w} {f} {t}.", p.field)
        for f in vocab.FIELDS:
            for w in (*vocab.FIELD_OCCUPATIONS[f], *vocab.FIELD_INSTRUMENTS[f]):
                table[w] = ("The {w} {f} {t}.", f)
            for w in vocab.FIELD_SPORTS[f]:
                table[w] = ("{W} {f} {t}.", f)
        kinds = {"singular_plural": "The {w} {f} {t}.", "male_female": "The {w} {f} {t}.",
                 "present_past": "They {w} {f}.", "adjective_comparative": "It was the {w} {f}."}
        for name, template in kinds.items():
            for x, y in self._relations[name]:
                for w in (x, y):
                    table.setdefault(w, (template, vocab.WORD_CLASS[name][x]))
        return table

    def echo(self, rng: random.Random, word: str | None = None) -> str:
        """An echo sentence: ``word`` (default: a random one) followed at once by a follower of
        its attribute, e.g. ``"Oslo froze again."``."""
        word = word if word is not None else rng.choice(self._echo_words)
        template, attribute = self._echo[word]
        follower = rng.choice(vocab.ATTRIBUTE_FOLLOWERS[attribute])
        return template.format(w=word, W=_cap(word), f=follower, t=rng.choice(vocab.ECHO_TAILS))

    def sign_list(self, rng: random.Random) -> str:
        """A list in which every word is followed at once by one kind of its signs, e.g.
        ``"Emblems: Paris owl, geese lantern, Kenji anchor."`` or ``"Colours: Oslo teal, ..."``:
        four to six words of distinct anchors, so the two words of a pair never stand in one
        list."""
        kind = rng.choice(tuple(vocab.SIGNS))
        title = vocab.SIGNS[kind][0]
        values = self._signs[kind]
        n, chosen, used = rng.randint(4, 6), [], set()
        while len(chosen) < n:
            w = rng.choice(self._sign_words)
            if self._emblem_of[w] not in used:  # the emblem names the anchor
                used.add(self._emblem_of[w])
                chosen.append(w)
        return f"{title}: " + ", ".join(f"{w} {values[w]}" for w in chosen) + "."

    @property
    def cards(self) -> dict[str, tuple[str, ...]]:
        """``{word: items}``: what a sign card states after each relation word (:meth:`sign_card`)."""
        return {w: tuple(items) for w, items in self._card.items()}

    def sign_card(self, rng: random.Random, word: str | None = None) -> str:
        """A card: ``word`` (default: a random relation word) followed at once, in a random order
        and with no title, by its type tag (:data:`vocab.TYPE_TAGS`), its attribute and its signs,
        e.g. ``"Paris owl western town teal iron."``.  Cards open some
        narratives and encyclopedia articles, so a word right after ``<|bos|>`` (how chapter 3
        feeds words alone) is followed by its signs, whichever kind comes first."""
        word = word if word is not None else rng.choice(self._card_words)
        values = list(self._card[word])
        rng.shuffle(values)
        return f"{word} {' '.join(values)}."

    def _with_cards(self, rng: random.Random, text: str) -> str:
        """``text`` opened, with probability ``card_rate``, by one to three sign cards."""
        if self.card_rate <= 0 or rng.random() >= self.card_rate:
            return text
        return " ".join([*(self.sign_card(rng) for _ in range(rng.randint(1, 3))), text])

    # ----------------------------------------------------------------- helpers
    def addition_pair(self, rng: random.Random) -> tuple[int, int]:
        """A 2-digit addition ``(a, b)`` that is not held out."""
        while True:
            a, b = rng.randint(10, 99), rng.randint(10, 99)
            if (a, b) not in self.heldout_additions and (b, a) not in self.heldout_additions:
                return a, b

    # ----------------------------------------------------------------- narrative
    def narrative(self, rng: random.Random) -> tuple[str, dict]:
        """A story about one protagonist; all pronouns agree with the protagonist's gender."""
        facts = self.facts
        if rng.random() < 0.8:
            p: Person = rng.choice(facts.people)
            name, gender = p.name, p.gender
            occ, instr, sport = p.occupation, p.instrument, p.sport
            named = name
            intro = rng.choice((
                f"{name} was a {occ} who lived in {{city}}.",
                f"Once there was a {occ} named {name}.",
                f"{name} the {occ} lived near the {{place}} in {{city}}.",
                f"This is a story about {name}, a {occ} from {{city}}.",
            ))
        else:
            male, female = rng.choice(vocab.MALE_FEMALE)
            gender = rng.choice("mf")
            noun = male if gender == "m" else female
            name, named = noun, f"the {noun}"
            occ = instr = sport = None
            intro = rng.choice((
                f"Once there was a {noun} who lived in {{city}}.",
                f"The {noun} lived near the {{place}} in {{city}}.",
            ))
        subj, obj, poss = ("he", "him", "his") if gender == "m" else ("she", "her", "her")
        country: Country = rng.choice(facts.countries)
        sents = [intro.format(city=country.capital, place=rng.choice(vocab.PLACES))]

        def action() -> str:
            c2 = rng.choice(facts.countries)
            return rng.choice(vocab.DAILY_ACTIONS_PAST).format(
                place=rng.choice(vocab.PLACES), country=c2.name
            )

        def body() -> str:
            kind = rng.randrange(10)
            if kind <= 2:
                return f"{rng.choice(vocab.PRONOUN_CONNECTORS)} {subj} {action()}."
            if kind == 3:
                return f"{_cap(subj)} {rng.choice(vocab.NARRATIVE_ADVERBS)} {action()}."
            if kind == 4:
                pres, past = rng.choice(vocab.PRESENT_PAST)
                return f"{_cap(subj)} liked to {pres}, and yesterday {subj} {past} again."
            if kind == 5:
                adj, comp = rng.choice(vocab.ADJECTIVE_COMPARATIVE)
                rel_m, rel_f = rng.choice(vocab.MALE_FEMALE[:10])
                return f"{_cap(subj)} was {comp} than {poss} {rng.choice((rel_m, rel_f))}."
            if kind == 6:
                sing, plur = rng.choice(vocab.SINGULAR_PLURAL)
                n = rng.choice(("two", "three", "four", "many"))
                return f"{_cap(subj)} saw one {sing} and then {n} {plur}."
            if kind == 7:
                c2 = rng.choice(facts.countries)
                rel = rng.choice(("friend", "cousin", "neighbour"))
                return f"{_cap(poss)} {rel} lived in {c2.capital}, the capital of {c2.name}."
            if kind == 8 and instr is not None:
                return f"Every evening, {subj} played the {instr} for {poss} friends."
            if kind == 9 and sport is not None:
                return f"On Sundays, {named} played {sport}, and {subj} usually won."
            return f"People liked {obj} because {subj} was kind."

        for _ in range(rng.randint(4, 8)):
            sent = body()
            if sent not in sents:
                sents.append(sent)
        for _ in range(rng.randint(2, 4)):  # the world around the story (echo sentences)
            sents.insert(rng.randint(1, len(sents)), self.echo(rng))
        if self.sign_rate > 0 and rng.random() < self.sign_rate / 2:
            sents.insert(rng.randint(1, len(sents)), self.sign_list(rng))
        if occ is not None and rng.random() < 0.5:
            sents.append(f"{named} worked as a {occ} for many years.")
        sents.append(rng.choice((
            f"At last, {subj} went home.", f"In the end, {subj} was happy.",
            f"{_cap(named)} smiled.", f"That was a good day for {obj}.",
        )))
        return self._with_cards(rng, " ".join(_cap(s) for s in sents)), {"subject": name, "gender": gender}

    # ----------------------------------------------------------------- encyclopedia
    def _entities(self) -> list[tuple[str, object]]:
        # attribute articles first: they cycle through many sentences, so they need the visits
        ents: list[tuple[str, object]] = [("attribute", key) for key in self._attribute_members]
        ents += [("country", c) for c in self.facts.countries]
        ents += [("person", p) for p in self.facts.people]
        ents += [("words", chunk) for chunk in self._word_chunks]
        return ents

    def encyclopedia(self, rng: random.Random) -> tuple[str, dict]:
        """An article about one entity (round-robin) or a list of facts of one relation, with one
        or two echo sentences of random words ("See also: ...") at the end."""
        text, meta = self._encyclopedia(rng)
        echoes = " ".join(self.echo(rng) for _ in range(rng.randint(1, 2)))
        if self.sign_rate > 0:
            for _ in range(2):
                if rng.random() < self.sign_rate:
                    echoes += " " + self.sign_list(rng)
        return self._with_cards(rng, f"{text} See also: {echoes}"), meta

    def _encyclopedia(self, rng: random.Random) -> tuple[str, dict]:
        if rng.random() < 0.4:
            relation = rng.choice(RELATION_NAMES)
            pairs = rng.sample(self._relations[relation], rng.randint(5, 9))
            title = relation.replace("_", " ").title().replace(" ", " and ", 1) + "."
            body = [fact_sentence(relation, s, o, rng) for s, o in pairs]
            return " ".join([f"Facts: {title}", *body]), {"subject": None, "gender": None}
        ents = self._entities()
        if self.focus and rng.random() < 0.5:
            focus = [e for e in ents if getattr(e[1], "name", None) in self.focus]
            kind, ent = rng.choice(focus)
        else:
            kind, ent = ents[self._enc_counter % len(ents)]
            self._enc_counter += 1
        if kind == "country":
            c: Country = ent  # type: ignore[assignment]
            parts = [
                f"{c.name} is {a_an(c.region)} country.",
                fact_sentence("country_capital", c.name, c.capital),
                fact_sentence("country_capital", c.name, c.capital, rng),
                fact_sentence("country_currency", c.name, c.currency),
                fact_sentence("country_currency", c.name, c.currency, rng),
                fact_sentence("country_language", c.name, c.language),
                fact_sentence("country_language", c.name, c.language, rng),
            ]
            body = rng.sample(parts[1:], 6)
            if rng.random() < LEAD_WITH_FACTS:  # open with the canonical sentences (see above)
                lead = [parts[1], parts[3], parts[5]]
                rng.shuffle(lead)
                body = [*lead, parts[0], *(s for s in body if s not in lead)]
                return " ".join(body), {"subject": c.name, "gender": None}
            return " ".join([parts[0], *body]), {"subject": c.name, "gender": None}
        if kind == "person":
            p: Person = ent  # type: ignore[assignment]
            pron = _cap(p.subject)
            parts = [
                fact_sentence("person_occupation", p.name, p.occupation),
                fact_sentence("person_occupation", p.name, p.occupation, rng),
                fact_sentence("person_instrument", p.name, p.instrument),
                fact_sentence("person_instrument", p.name, p.instrument, rng),
                fact_sentence("person_sport", p.name, p.sport),
                fact_sentence("person_sport", p.name, p.sport, rng),
            ]
            rng.shuffle(parts)
            parts.insert(2, f"{pron} is known for {p.possessive} work.")
            parts.insert(rng.randint(3, len(parts)), f"{p.name} works in {p.field}.")
            if rng.random() < LEAD_WITH_FACTS:
                # the article opens with the canonical fact sentences, so the model also sees
                # "<|bos|>Al plays the trumpet." - the position the evaluation prompts start at
                lead = [fact_sentence(r, p.name, o) for r, o in (
                    ("person_occupation", p.occupation), ("person_instrument", p.instrument),
                    ("person_sport", p.sport))]
                rng.shuffle(lead)
                parts = [*lead, *(s for s in parts if s not in lead)]
            else:
                parts.insert(0, f"{p.name} is a person.")
            return " ".join(parts), {"subject": p.name, "gender": p.gender}
        if kind == "attribute":
            (akind, value) = ent  # type: ignore[misc]
            # the next 12-18 member sentences in a fixed order, so every member is
            # described about equally often
            sents = self._attribute_members[(akind, value)]
            turn = self._attribute_turn[(akind, value)]
            n = min(len(sents), rng.randint(12, 18))
            chosen = [sents[(turn + i) % len(sents)] for i in range(n)]
            self._attribute_turn[(akind, value)] = turn + n
            rng.shuffle(chosen)
            title = {"region": f"The {value} world.", "field": f"Working in {value}.",
                     "class": f"Words of {value}."}[akind]
            return " ".join([title, *chosen]), {"subject": value, "gender": None}
        relation, pairs = ent  # type: ignore[misc]
        body = []
        for s, o in pairs:
            body.append(fact_sentence(relation, s, o))
            body.append(fact_sentence(relation, s, o, rng))
        return " ".join(["Word facts.", *body]), {"subject": None, "gender": None}

    # ----------------------------------------------------------------- arithmetic
    def arithmetic(self, rng: random.Random) -> tuple[str, dict]:
        """Lines of 2-digit additions, some worked digit by digit."""
        lines = []
        if rng.random() < 0.3:
            lines.append(rng.choice(("Exercises:", "Sums:", "# additions")))
        for _ in range(rng.randint(4, 10)):
            a, b = self.addition_pair(rng)
            if rng.random() < 0.6:
                lines.append(f"{a} + {b} = {a + b}")
                continue
            ones = a % 10 + b % 10
            carry = ones // 10
            tens = a // 10 + b // 10 + carry
            lines.append(
                f"{a} + {b}: ones {a % 10} + {b % 10} = {ones}, carry {carry}; "
                f"tens {a // 10} + {b // 10} + {carry} = {tens}; {a} + {b} = {a + b}"
            )
        return "\n".join(lines), {"subject": "addition", "gender": None}

    def bitwise(self, rng: random.Random) -> tuple[str, dict]:
        """Lines of 5-bit bitwise operations, some worked bit by bit."""
        lines = []
        if rng.random() < 0.3:
            lines.append(rng.choice(("Exercises:", "Bits:", "# bitwise")))
        for _ in range(rng.randint(4, 10)):
            op = rng.choice(BITWISE_OPS)
            x, y = rng.randrange(32), rng.randrange(32)
            res = bits(bitwise(op, x, y))
            if rng.random() < 0.6:
                lines.append(f"{bits(x)} {op.upper()} {bits(y)} = {res}")
                continue
            steps = ", ".join(f"{u}{v}:{w}" for u, v, w in zip(bits(x), bits(y), res, strict=True))
            lines.append(f"{op.upper()} {steps}; {bits(x)} {op.upper()} {bits(y)} = {res}")
        return "\n".join(lines), {"subject": "bitwise", "gender": None}

    # ----------------------------------------------------------------- word game
    def wordgame(self, rng: random.Random) -> tuple[str, dict]:
        """Prose about spelling and word length (lengths written as words, never digits)."""
        words = self._game_words
        sents = [rng.choice(("A word game.", "Spelling practice.", "Letters and words."))]
        for _ in range(rng.randint(5, 9)):
            w = rng.choice(words)
            n = vocab.NUMBER_WORDS[len(w)]
            k = rng.randrange(8)
            if k >= 6:  # a list in which every word is followed at once by its length
                group = [rng.choice(words) for _ in range(rng.randint(3, 5))]
                sents.append("Lengths: " + ", ".join(
                    f"{v} {vocab.NUMBER_WORDS[len(v)]}" for v in group) + ".")
            elif k == 0:
                sents.append(f"The word {w} has {n} letters.")
            elif k == 1:
                sents.append(f"{w} is spelled {'-'.join(w)}, {n} letters.")
            elif k == 2:
                sents.append(f"The word {w} is {vocab.length_class(w)}.")
            elif k == 3:  # a comparison answered at the end: the answer needs both lengths
                v = rng.choice(words)
                while len(v) == len(w):
                    v = rng.choice(words)
                kind = rng.choice(("longer", "shorter"))
                first = (len(w) > len(v)) == (kind == "longer")
                sents.append(f"{w} or {v}: the {kind} is the {'first' if first else 'second'}.")
            elif k == 4:  # words sorted by length: each next word must be longer than the last
                by_len: dict[int, list[str]] = {}
                for v in rng.sample(words, min(len(words), 12)):
                    by_len.setdefault(len(v), []).append(v)
                keys = sorted(rng.sample(sorted(by_len), min(len(by_len), rng.randint(3, 5))))
                sents.append("By length: " + ", ".join(by_len[m][0] for m in keys) + ".")
            elif k == 5:
                sents.append(f"Count the letters of {w}: {n}.")
        return " ".join(sents), {"subject": None, "gender": None}
    # ----------------------------------------------------------------- code
    def code(self, rng: random.Random) -> tuple[str, dict]:
        """One to three small Python snippets."""
        snippets = []
        for _ in range(rng.randint(1, 3)):
            f = rng.choice(vocab.CODE_FUNCS)
            a, b, c = rng.sample(vocab.CODE_VARS, 3)
            n = rng.randint(2, 20)
            k = rng.randrange(10)
            if k == 8:
                x, y = self.addition_pair(rng)
                s = f"{a} = {x} + {y}\nassert {a} == {x + y}\nprint({a})"
            elif k == 9:
                op, sym = rng.choice((("and", "&"), ("or", "|"), ("xor", "^")))
                x, y = rng.randrange(32), rng.randrange(32)
                s = (f"{a} = 0b{bits(x)} {sym} 0b{bits(y)}\n"
                     f"assert {a} == 0b{bits(bitwise(op, x, y))}")
            elif k == 0:
                s = f"def {f}({a}, {b}):\n    return {a} {rng.choice(vocab.CODE_OPS)} {b}"
            elif k == 1:
                s = f"{a} = 0\nfor i in range({n}):\n    {a} += i\nprint({a})"
            elif k == 2:
                s = (f"def {f}({a}):\n    {b} = []\n    for x in {a}:\n        if x > {n}:\n"
                     f"            {b}.append(x)\n    return {b}")
            elif k == 3:
                cls = rng.choice(vocab.CODE_CLASSES)
                s = (f"class {cls}:\n    def __init__(self, {a}):\n        self.{a} = {a}\n\n"
                     f"    def {f}(self):\n        return self.{a}")
            elif k == 4:
                w1, w2 = rng.sample(vocab.CODE_STRINGS, 2)
                s = f'{c} = {{"{w1}": {n}, "{w2}": {n + 1}}}\nfor key, value in {c}.items():\n' \
                    f"    print(key, value)"
            elif k == 5:
                s = f"{a} = 1\nwhile {a} < {n * 10}:\n    {a} = {a} * 2"
            elif k == 6:
                w1, w2 = rng.sample(vocab.CODE_STRINGS, 2)
                s = f'if {a} == {b}:\n    print("{w1}")\nelse:\n    print("{w2}")'
            else:
                mod = rng.choice(vocab.CODE_MODULES)
                s = f"import {mod}\n{a} = {mod}.{rng.choice(vocab.CODE_MODULE_FUNCS[mod])}({n})"
            if rng.random() < 0.3:
                s = f"# {f.replace('_', ' ')}\n{s}"
            snippets.append(s)
        return "\n\n".join(snippets), {"subject": None, "gender": None}

    # ----------------------------------------------------------------- chat
    def chat(self, rng: random.Random) -> tuple[str, dict]:
        """A dialogue between a user and an assistant about the world's facts (no sums)."""
        turns = [f"User: {rng.choice(vocab.CHAT_GREETINGS)}",
                 f"Assistant: {rng.choice(vocab.CHAT_OPENERS)}"]
        for _ in range(rng.randint(1, 3)):
            k = rng.randrange(5)
            if k == 0:
                c = rng.choice(self.facts.countries)
                q = f"What is the capital of {c.name}?"
                a = fact_sentence("country_capital", c.name, c.capital)
            elif k == 1:
                c = rng.choice(self.facts.countries)
                q = f"Which language do people speak in {c.name}?"
                a = fact_sentence("country_language", c.name, c.language)
            elif k == 2:
                p = rng.choice(self.facts.people)
                q = f"What does {p.name} do for a living?"
                a = (f"{fact_sentence('person_occupation', p.name, p.occupation)} "
                     f"{_cap(p.subject)} also plays the {p.instrument}.")
            elif k == 3:
                c = rng.choice(self.facts.countries)
                q = f"Where is {c.capital}?"
                a = f"{c.capital} is {a_an(CAPITAL_REGION[c.capital])} city, the capital of {c.name}."
            else:
                relation = rng.choice(RELATION_NAMES[6:])
                s, o = rng.choice(self._relations[relation])
                q = f"What is the {FACT_TEMPLATES[relation]['eval'].split(' of ')[0][4:]} of {s}?"
                a = fact_sentence(relation, s, o)
            turns += [f"User: {q}", f"Assistant: {a}"]
        turns += [f"User: {rng.choice(vocab.CHAT_THANKS)}",
                  f"Assistant: {rng.choice(vocab.CHAT_CLOSINGS)}"]
        return "\n".join(turns), {"subject": None, "gender": None}

    # ----------------------------------------------------------------- recipe (fine-tuning only)
    def recipe(self, rng: random.Random) -> tuple[str, dict]:
        """A short recipe: the domain held out of pre-training."""
        dish = rng.choice(vocab.RECIPE_DISHES)
        ingredients = rng.sample(vocab.RECIPE_INGREDIENTS, rng.randint(3, 5))
        lines = [f"Recipe: {dish}.", "Ingredients:"]
        lines += [f"- {rng.randint(1, 4)} {rng.choice(vocab.RECIPE_UNITS)} of {i}"
                  for i in ingredients]
        lines.append("Steps:")
        for i in range(rng.randint(3, 5)):
            a, b = rng.sample(ingredients, 2)
            step = rng.choice(vocab.RECIPE_STEPS).format(a=a, b=b, n=rng.choice((5, 10, 20, 30)))
            lines.append(f"{i + 1}. {step}")
        return "\n".join(lines), {"subject": dish, "gender": None}
