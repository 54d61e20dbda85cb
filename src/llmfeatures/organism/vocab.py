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
