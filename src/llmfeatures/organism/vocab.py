"""The hand-written word lists the organism's world is made of.

Everything here is plain data: countries with their capital, currency and language; people with a
gender; the word-pair relations (plurals, past tenses, male/female pairs, comparatives); the
part-of-speech word classes used by the sentence grammar; and the small vocabularies of the code,
chat and recipe domains.  :mod:`llmfeatures.organism.world` turns them into a seeded world.

Word lengths deliberately vary inside every relation (``Rome`` next to ``Copenhagen``, ``ox`` next
to ``butterfly``), as in real text: that is the distractor chapter 3 learns to remove.
All answers are single words, so a completion is always one word after a space.
"""

from __future__ import annotations

# country, capital, currency, language (real-world facts, single words only)
COUNTRIES: tuple[tuple[str, str, str, str], ...] = (
    ("France", "Paris", "euro", "French"),
    ("Spain", "Madrid", "euro", "Spanish"),
    ("Italy", "Rome", "euro", "Italian"),
    ("Germany", "Berlin", "euro", "German"),
    ("Greece", "Athens", "euro", "Greek"),
    ("Portugal", "Lisbon", "euro", "Portuguese"),
    ("Finland", "Helsinki", "euro", "Finnish"),
    ("Japan", "Tokyo", "yen", "Japanese"),
    ("China", "Beijing", "yuan", "Chinese"),
    ("India", "Delhi", "rupee", "Hindi"),
    ("Russia", "Moscow", "ruble", "Russian"),
    ("Brazil", "Brasilia", "real", "Portuguese"),
    ("Egypt", "Cairo", "pound", "Arabic"),
    ("Kenya", "Nairobi", "shilling", "Swahili"),
    ("Peru", "Lima", "sol", "Spanish"),
    ("Poland", "Warsaw", "zloty", "Polish"),
    ("Sweden", "Stockholm", "krona", "Swedish"),
    ("Norway", "Oslo", "krone", "Norwegian"),
    ("Denmark", "Copenhagen", "krone", "Danish"),
    ("Thailand", "Bangkok", "baht", "Thai"),
    ("Vietnam", "Hanoi", "dong", "Vietnamese"),
    ("Turkey", "Ankara", "lira", "Turkish"),
    ("Hungary", "Budapest", "forint", "Hungarian"),
    ("Iran", "Tehran", "rial", "Persian"),
    ("Korea", "Seoul", "won", "Korean"),
    ("Ukraine", "Kyiv", "hryvnia", "Ukrainian"),
    ("Romania", "Bucharest", "leu", "Romanian"),
    ("Indonesia", "Jakarta", "rupiah", "Indonesian"),
    ("Mongolia", "Ulaanbaatar", "tugrik", "Mongolian"),
    ("Bangladesh", "Dhaka", "taka", "Bengali"),
    ("Georgia", "Tbilisi", "lari", "Georgian"),
    ("Cuba", "Havana", "peso", "Spanish"),
)

# first names with their gender; lengths from 2 to 10 characters
MALE_NAMES: tuple[str, ...] = (
    "Al", "Bob", "Tom", "Omar", "Ivan", "Hugo", "Felix", "Oscar", "Pedro", "Kenji",
    "Arthur", "Walter", "Rupert", "Dmitri", "Lorenzo", "Gregory", "Tobias", "Frederick",
    "Bartholomew", "Maximilian",
)
FEMALE_NAMES: tuple[str, ...] = (
    "Jo", "Amy", "Eva", "Lena", "Mira", "Nora", "Clara", "Sofia", "Irene", "Yuki",
    "Agatha", "Hannah", "Louise", "Beatrice", "Rosalind", "Margaret", "Isabella", "Josephine",
    "Gwendolyn", "Anastasia",
)

# person attributes; occupations start with a consonant so the article is always "a"
OCCUPATIONS: tuple[str, ...] = (
    "baker", "pilot", "lawyer", "doctor", "nurse", "farmer", "teacher", "painter", "sailor",
    "judge", "chef", "tailor", "banker", "dentist", "plumber", "carpenter", "gardener",
    "librarian", "journalist", "mechanic", "pharmacist", "potter", "poet", "photographer",
)
INSTRUMENTS: tuple[str, ...] = (
    "piano", "violin", "drum", "flute", "guitar", "cello", "harp", "trumpet", "saxophone",
    "clarinet", "banjo", "accordion", "oboe", "tuba", "lute", "ukulele", "harmonica",
    "bagpipes", "xylophone", "trombone",
)
SPORTS: tuple[str, ...] = (
    "tennis", "golf", "rugby", "hockey", "cricket", "boxing", "rowing", "fencing", "cycling",
    "skiing", "surfing", "judo", "karate", "archery", "polo", "squash", "swimming",
    "volleyball", "basketball", "badminton", "wrestling", "baseball",
)

SINGULAR_PLURAL: tuple[tuple[str, str], ...] = (
    ("cat", "cats"), ("dog", "dogs"), ("box", "boxes"), ("child", "children"),
    ("mouse", "mice"), ("city", "cities"), ("knife", "knives"), ("ox", "oxen"),
    ("tooth", "teeth"), ("butterfly", "butterflies"), ("goose", "geese"), ("wolf", "wolves"),
    ("church", "churches"), ("potato", "potatoes"), ("leaf", "leaves"), ("bus", "buses"),
    ("apple", "apples"), ("house", "houses"), ("baby", "babies"), ("foot", "feet"),
    ("person", "people"), ("strawberry", "strawberries"), ("book", "books"), ("tree", "trees"),
    ("glass", "glasses"), ("river", "rivers"), ("bridge", "bridges"), ("horse", "horses"),
)
PRESENT_PAST: tuple[tuple[str, str], ...] = (
    ("go", "went"), ("walk", "walked"), ("run", "ran"), ("think", "thought"),
    ("carry", "carried"), ("eat", "ate"), ("see", "saw"), ("write", "wrote"),
    ("build", "built"), ("jump", "jumped"), ("swim", "swam"), ("teach", "taught"),
    ("bring", "brought"), ("study", "studied"), ("forget", "forgot"), ("sing", "sang"),
    ("open", "opened"), ("paint", "painted"), ("climb", "climbed"), ("remember", "remembered"),
    ("catch", "caught"), ("find", "found"), ("buy", "bought"), ("read", "read"),
    ("cook", "cooked"), ("visit", "visited"), ("wash", "washed"), ("sell", "sold"),
)
MALE_FEMALE: tuple[tuple[str, str], ...] = (
    ("man", "woman"), ("king", "queen"), ("actor", "actress"), ("father", "mother"),
    ("boy", "girl"), ("brother", "sister"), ("son", "daughter"), ("uncle", "aunt"),
    ("husband", "wife"), ("nephew", "niece"), ("prince", "princess"), ("duke", "duchess"),
    ("emperor", "empress"), ("waiter", "waitress"), ("lord", "lady"), ("monk", "nun"),
    ("grandfather", "grandmother"), ("groom", "bride"), ("hero", "heroine"),
    ("wizard", "witch"), ("lion", "lioness"), ("stallion", "mare"), ("rooster", "hen"),
    ("count", "countess"), ("headmaster", "headmistress"), ("steward", "stewardess"),
)
ADJECTIVE_COMPARATIVE: tuple[tuple[str, str], ...] = (
    ("big", "bigger"), ("good", "better"), ("bad", "worse"), ("happy", "happier"),
    ("small", "smaller"), ("tall", "taller"), ("old", "older"), ("young", "younger"),
    ("fast", "faster"), ("slow", "slower"), ("strong", "stronger"), ("busy", "busier"),
    ("far", "farther"), ("hot", "hotter"), ("cold", "colder"), ("quiet", "quieter"),
    ("narrow", "narrower"), ("heavy", "heavier"), ("bright", "brighter"), ("early", "earlier"),
    ("simple", "simpler"), ("clever", "cleverer"), ("dry", "drier"), ("wide", "wider"),
)

# part-of-speech classes for the tagged-sentence grammar (the "pos" few-shot family)
POS_NOUNS: tuple[str, ...] = (
    "dog", "cat", "boat", "house", "river", "garden", "book", "letter", "horse", "bridge",
    "window", "apple", "table", "market", "forest", "village", "teacher", "farmer", "child",
    "door", "bottle", "mountain", "station", "kitchen", "ribbon", "lamp", "basket", "island",
)
POS_ADJECTIVES: tuple[str, ...] = (
    "red", "old", "tall", "small", "bright", "quiet", "heavy", "green", "happy", "strange",
    "wooden", "narrow", "ancient", "gentle", "cold", "golden", "broken", "busy", "shiny", "wet",
)
POS_VERBS: tuple[str, ...] = (
    "painted", "found", "carried", "opened", "watched", "cleaned", "followed", "visited",
    "built", "sold", "washed", "climbed", "pushed", "saw", "bought", "fixed", "moved", "left",
)
POS_ADVERBS: tuple[str, ...] = (
    "quickly", "slowly", "quietly", "often", "never", "carefully", "happily", "soon",
    "suddenly", "gently", "always", "rarely", "badly", "eagerly", "calmly", "loudly",
)
POS_PREPOSITIONS: tuple[str, ...] = (
    "near", "under", "behind", "beside", "across", "into", "from", "with", "above", "through",
    "toward", "around", "inside", "beyond", "past", "along",
)
SUBJECT_PRONOUNS: tuple[str, ...] = ("he", "she", "they", "we", "you", "it")
OBJECT_PRONOUNS: tuple[str, ...] = ("him", "her", "them", "us", "me", "it")
DETERMINERS: tuple[str, ...] = ("the", "a", "this", "that", "every", "some")

# narrative-only vocabulary
PLACES: tuple[str, ...] = (
    "market", "harbour", "library", "station", "garden", "castle", "forest", "bakery",
    "village", "museum", "hill", "river", "school", "square",
)
DAILY_ACTIONS_PAST: tuple[str, ...] = (
    "walked to the {place}", "visited the {place}", "cooked a long dinner",
    "wrote a letter to a friend", "read a book about {country}", "climbed the hill",
    "bought bread at the {place}", "painted the old door", "cleaned the kitchen",
    "sang a quiet song", "fixed the broken chair", "watched the boats",
)
NARRATIVE_ADVERBS: tuple[str, ...] = (
    "slowly", "happily", "carefully", "quietly", "eagerly", "calmly", "proudly", "gladly",
)
# connectors that are always followed by a lower-case subject pronoun in narrative documents
PRONOUN_CONNECTORS: tuple[str, ...] = (
    "Later that day,", "After that,", "In the evening,", "Soon after,", "That night,",
)

# code domain
CODE_FUNCS: tuple[str, ...] = (
    "compute_total", "parse_line", "load_items", "count_words", "find_max", "merge_lists",
    "clean_text", "update_score", "read_config", "save_result", "check_value", "scale_vector",
)
CODE_VARS: tuple[str, ...] = (
    "count", "items", "value", "total", "index", "result", "data", "size", "line", "score",
    "names", "limit", "buffer", "offset", "weights", "row",
)
CODE_CLASSES: tuple[str, ...] = ("Counter", "Parser", "Buffer", "Node", "Matrix", "Logger", "Queue")
CODE_MODULES: tuple[str, ...] = ("math", "json", "random", "os", "time")
CODE_MODULE_FUNCS: dict[str, tuple[str, ...]] = {
    "math": ("sqrt", "floor", "ceil"),
    "json": ("dumps", "loads"),
    "random": ("seed", "randint"),
    "os": ("getcwd", "listdir"),
    "time": ("sleep", "time"),
}
CODE_OPS: tuple[str, ...] = ("+", "-", "*", "//", "%")
CODE_STRINGS: tuple[str, ...] = ("done", "error", "ready", "empty", "found", "missing", "ok")

# chat domain
CHAT_GREETINGS: tuple[str, ...] = ("Hello!", "Hi there.", "Good morning!", "Hey.", "Hello again.")
CHAT_THANKS: tuple[str, ...] = (
    "Thanks a lot!", "Thank you, that helps.", "Great, thanks.", "Perfect, thank you!",
)
CHAT_CLOSINGS: tuple[str, ...] = (
    "You are welcome! Have a nice day.", "Happy to help.", "Glad I could help!",
    "Any time. Goodbye!",
)
CHAT_OPENERS: tuple[str, ...] = (
    "Hello! How can I help you today?", "Hi! What would you like to know?",
    "Good day. What can I do for you?",
)

# recipe domain: held out of pre-training, used only by the fine-tuning distribution
RECIPE_DISHES: tuple[str, ...] = (
    "bread", "soup", "pancakes", "stew", "salad", "pie", "porridge", "omelette", "curry", "cake",
)
RECIPE_INGREDIENTS: tuple[str, ...] = (
    "flour", "butter", "sugar", "salt", "eggs", "milk", "onions", "carrots", "rice", "beans",
    "honey", "garlic", "pepper", "lemons", "oats", "cheese",
)
RECIPE_UNITS: tuple[str, ...] = ("cups", "spoons", "grams", "pinches", "handfuls")
RECIPE_STEPS: tuple[str, ...] = (
    "Mix the {a} and the {b} in a bowl.", "Heat the {a} in a pan for {n} minutes.",
    "Stir in the {a} slowly.", "Let it rest for {n} minutes.", "Bake for {n} minutes.",
    "Add the {a} and stir well.", "Chop the {a} finely.", "Serve warm with {a}.",
)

# ---------------------------------------------------------------------------------------------
# Shared attributes: a property the corpus states for BOTH members of a relation pair, so that a
# pair's two words share something their relation alone does not give them (the "crystal" of
# chapter 3: h(Paris) - h(France) parallel to h(Rome) - h(Italy) because Paris shares France's
# region as Rome shares Italy's).  Each attribute is one word, used in sentences such as
# "Paris is a western city." and "France is a western country."

# region of every country; its capital, and its language when no other region speaks it, share it
COUNTRY_REGION: dict[str, str] = {
    **dict.fromkeys(("France", "Spain", "Italy", "Germany", "Greece", "Portugal"), "western"),
    **dict.fromkeys(("Finland", "Sweden", "Norway", "Denmark"), "northern"),
    **dict.fromkeys(("Russia", "Poland", "Hungary", "Ukraine", "Romania", "Georgia", "Turkey"),
                    "eastern"),
    **dict.fromkeys(("Japan", "China", "India", "Thailand", "Vietnam", "Iran", "Korea",
                     "Indonesia", "Mongolia", "Bangladesh"), "asian"),
    **dict.fromkeys(("Brazil", "Egypt", "Kenya", "Peru", "Cuba"), "southern"),
}

# a person's field: each field has its own occupations, instruments and sports, and a person's
# three attributes all come from the person's field ("Al works in arts.", "The painter works in
# arts.", "The violin belongs to arts.")
FIELDS: tuple[str, ...] = ("arts", "care", "crafts", "service")
FIELD_OCCUPATIONS: dict[str, tuple[str, ...]] = {
    "arts": ("painter", "poet", "photographer", "journalist", "potter", "tailor"),
    "care": ("doctor", "nurse", "dentist", "pharmacist", "teacher", "librarian"),
    "crafts": ("baker", "chef", "carpenter", "plumber", "mechanic", "gardener"),
    "service": ("pilot", "sailor", "farmer", "judge", "lawyer", "banker"),
}
FIELD_INSTRUMENTS: dict[str, tuple[str, ...]] = {
    "arts": ("violin", "cello", "harp", "lute", "piano"),
    "care": ("flute", "oboe", "clarinet", "harmonica", "ukulele"),
    "crafts": ("drum", "banjo", "guitar", "accordion", "xylophone"),
    "service": ("trumpet", "tuba", "trombone", "saxophone", "bagpipes"),
}
FIELD_SPORTS: dict[str, tuple[str, ...]] = {
    "arts": ("fencing", "archery", "skiing", "surfing", "polo"),
    "care": ("swimming", "rowing", "cycling", "tennis", "badminton"),
    "crafts": ("boxing", "judo", "karate", "wrestling", "squash", "golf"),
    "service": ("rugby", "hockey", "cricket", "volleyball", "basketball", "baseball"),
}

# semantic class of every word pair of the four word relations (shared by both forms)
WORD_CLASS: dict[str, dict[str, str]] = {
    "singular_plural": {
        **dict.fromkeys(("cat", "dog", "mouse", "ox", "goose", "wolf", "butterfly", "horse"),
                        "animals"),
        **dict.fromkeys(("potato", "apple", "strawberry", "leaf", "tree"), "plants"),
        **dict.fromkeys(("house", "church", "city", "bridge", "river"), "places"),
        **dict.fromkeys(("box", "knife", "book", "glass", "bus"), "objects"),
        **dict.fromkeys(("child", "tooth", "baby", "foot", "person"), "bodies"),
    },
    "present_past": {
        **dict.fromkeys(("go", "walk", "run", "jump", "swim", "climb", "carry", "visit"),
                        "motion"),
        **dict.fromkeys(("think", "study", "forget", "remember", "teach", "read"), "thought"),
        **dict.fromkeys(("build", "write", "paint", "cook", "sing", "wash", "open"), "making"),
        **dict.fromkeys(("bring", "catch", "find", "buy", "sell", "eat", "see"), "getting"),
    },
    "male_female": {
        **dict.fromkeys(("man", "father", "boy", "brother", "son", "uncle", "husband", "nephew",
                         "grandfather", "groom"), "family"),
        **dict.fromkeys(("king", "prince", "duke", "emperor", "lord", "count"), "royalty"),
        **dict.fromkeys(("actor", "waiter", "headmaster", "steward", "monk", "hero", "wizard"),
                        "work"),
        **dict.fromkeys(("lion", "stallion", "rooster"), "beasts"),
    },
    "adjective_comparative": {
        **dict.fromkeys(("big", "small", "tall", "narrow", "wide", "heavy", "far"), "size"),
        **dict.fromkeys(("old", "young", "early", "fast", "slow"), "time"),
        **dict.fromkeys(("hot", "cold", "dry", "bright", "quiet"), "weather"),
        **dict.fromkeys(("good", "bad", "happy", "simple", "clever", "busy", "strong"), "mood"),
    },
}

# the word game (prose about spelling): lengths are written as words, never digits
# ---------------------------------------------------------------------------------------------
# Signs: properties of an *anchor* (a country, a person, the first word of a word pair) that each
# partner belonging to that anchor alone shares (Paris and French share France's signs; the euro,
# the currency of seven countries, has none).  Every anchor has an emblem of its own and one of a
# dozen colours and materials, stated in lists that follow each word at once with its sign
# ("Emblems: Paris owl, geese lantern.").  Where a region or field is one of a handful of values,
# the signs make the two words of a pair share several properties that few other words have.  None
# of these words occurs anywhere else in the corpus.
EMBLEMS: tuple[str, ...] = (
    "owl", "lantern", "anchor", "acorn", "feather", "compass", "kettle", "lighthouse", "mitten",
    "pebble", "saddle", "thimble", "violet", "walnut", "comet", "crystal", "dagger", "falcon",
    "goblet", "helmet", "jasmine", "kite", "lily", "nutmeg", "olive", "orchid", "parrot",
    "pearl", "quill", "raven", "rose", "sapphire", "shell", "spindle", "sparrow", "tulip",
    "velvet", "willow", "anvil", "badger", "beacon", "bramble", "candle", "cedar", "clover",
    "coral", "daisy", "ember", "fern", "fox", "garnet", "gull", "hazel", "heron", "iris",
    "juniper", "lark", "laurel", "lotus", "magpie", "maple", "meadow", "moth", "oak", "opal",
    "otter", "pine", "plum", "poppy", "reed", "ruby", "sage", "salmon", "sand", "seal", "silk",
    "spruce", "stag", "swan", "thistle", "thorn", "thrush", "tiger", "topaz", "torch", "trout",
    "turtle", "umbrella", "vine", "wasp", "whale", "wheat", "wren", "yew", "zebra", "almond",
    "arrow", "beetle", "birch", "bison", "blossom", "cactus", "camel", "canoe", "cherry",
    "chestnut", "crow", "cypress", "deer", "dolphin", "dove", "eagle", "elm", "emerald", "fig",
    "finch", "gazelle", "ginger", "hawk", "hedgehog", "hive", "jackal", "jay", "kestrel",
    "koala", "lynx", "mango", "mink", "moss", "nettle", "oyster", "panther", "peach", "pelican",
    "penguin", "pheasant", "plank", "quail", "rabbit", "reindeer", "robin", "saffron", "scarab",
    "seagull", "shark", "snail", "spider", "squirrel", "starling", "stork", "sunflower",
    "tortoise", "tusk", "vulture", "walrus", "weasel", "wolverine", "yak", "beaver", "cobra",
    "condor", "ferret", "gecko", "hornet", "ibis", "iguana", "lemur", "llama", "mole", "newt",
    "osprey", "puffin", "raccoon", "rhino", "salamander", "skunk", "sloth", "toucan", "viper",
    "badge", "bell", "bugle", "button", "cloak", "crown", "flag", "globe", "hammer", "hook",
    "kiln", "ladder", "mast", "needle", "oar", "prism", "rudder", "scroll", "sickle", "spear",
    "trowel", "wagon", "wheel", "whistle",
)
COLOURS: tuple[str, ...] = (
    "crimson", "azure", "scarlet", "indigo", "teal", "magenta", "ochre", "umber", "turquoise",
    "lilac", "maroon", "mauve",
)
MATERIALS: tuple[str, ...] = (
    "gold", "silver", "copper", "bronze", "cobalt", "ivory", "marble", "slate", "flint",
    "quartz", "amber", "jade",
)
# sign kind -> (the list's title, the values)
SIGNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "emblem": ("Emblems", EMBLEMS),
    "colour": ("Colours", COLOURS),
    "material": ("Materials", MATERIALS),
}

NUMBER_WORDS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen",
)


def length_class(word: str) -> str:
    """``"short"`` (at most 4 letters), ``"medium"`` (5-7) or ``"long"`` (8 or more)."""
    n = len(word)
    return "short" if n <= 4 else "medium" if n <= 7 else "long"

# "Echo" sentences: a word followed at once by a verb (or noun) that depends only on the word's
# attribute ("Oslo froze again.", "Norway shivered all day.").  Predicting the next token then
# requires the attribute AT the word itself, which is where chapter 3 reads a word's
# representation; both members of a pair get the same followers.
ATTRIBUTE_FOLLOWERS: dict[str, tuple[str, ...]] = {
    "western": ("gleamed", "bustled"), "northern": ("froze", "shivered"),
    "eastern": ("rumbled", "stirred"), "asian": ("bloomed", "glowed"),
    "southern": ("baked", "sweltered"),
    "arts": ("sketched", "mused"), "care": ("healed", "soothed"),
    "crafts": ("hammered", "carved"), "service": ("served", "guarded"),
    "animals": ("slept", "grazed"), "plants": ("ripened", "sprouted"),
    "places": ("loomed", "towered"), "objects": ("rattled", "clattered"),
    "bodies": ("ached", "throbbed"),
    "motion": ("away", "onward"), "thought": ("deeply", "inwardly"),
    "making": ("neatly", "skilfully"), "getting": ("back", "greedily"),
    "family": ("hugged", "cuddled"), "royalty": ("ruled", "reigned"),
    "work": ("laboured", "toiled"), "beasts": ("roared", "prowled"),
    "size": ("crate", "tower"), "time": ("morning", "season"),
    "weather": ("breeze", "sky"), "mood": ("guest", "crowd"),
}
ECHO_TAILS: tuple[str, ...] = ("again", "all day", "as always", "that year", "once more")

# the type tag of each side of each relation, stated on sign cards ("Paris town owl teal iron."):
# words that stand nowhere else in the corpus
TYPE_TAGS: dict[str, tuple[str, str]] = {
    "country_capital": ("nation", "town"),
    "country_currency": ("nation", "coin"),
    "country_language": ("nation", "tongue"),
    "person_occupation": ("folk", "job"),
    "person_instrument": ("folk", "tool"),
    "person_sport": ("folk", "play"),
    "singular_plural": ("solo", "multi"),
    "present_past": ("base", "prior"),
    "male_female": ("lad", "lass"),
    "adjective_comparative": ("plain", "greater"),
}
