"""The concept bank: what a query asks to SEE, in the frame labellers' vocabulary.

``find_concepts(text)`` maps the words of a query to concepts: people and how many
(``two girls`` -> a people count of 2 and girl faces), who (woman, man, child, baby,
elderly), expressions (smiling -> happy), what a pose shows (``raising both fists`` ->
arms raised, ``drinking`` -> a hand at the face, ``hugging`` -> two people together),
COCO objects with their common names
(``sofa`` -> couch, ``longboard`` -> skateboard), how the picture is made (cartoon,
black and white, test pattern, screen capture), light (night -> dark), where (indoors,
outdoors, and places that imply one: a kitchen, a lawn) and colours.
Each concept lists the ``(kind, label, weight)`` labels that are evidence for it.

At search time (``evidence``) a segment's support for a concept is the best
``weight x score`` of its labels; the concepts of a query are averaged with weights
that say how informative each is in this library (inverse document frequency over
segments: "person" in a library of interviews says little, "dog" a lot). The
planner adds ``LABEL_WEIGHT x visual weight x evidence`` to the fused score, and the
label retriever (``label_run``) lets segments that carry a rare concept compete even
when no vector search found them. ``describe`` turns a segment's labels into the
"seen:" line of a result.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping, Sequence


__all__ = ["Concept", "find_concepts", "coverage", "read_concepts", "ranking_concepts", "label_weight", "evidence", "label_run",
           "add_evidence", "describe", "LABEL_WEIGHT",
           "VOCABULARY", "label_filter_values", "filter_concepts", "LABEL_FILTER_MIN"]

# The score at which each kind of frame label is shown ("seen:" lines, the label
# timeline) and at which a label filter holds: set where its precision on the hand
# labels reaches 0.8 (python -m benchmarks.bench_labels; docs/labels.md). Colour: a
# share of the frame of 0.3 or more (score = share / 0.3).
LABEL_FILTER_MIN = {"object": 0.5, "people": 0.4, "face": 0.8, "emotion": 0.85, "style": 0.5, "scene": 0.5,
                    "colour": 1.0, "action": 0.4, "hair": 0.6}

LABEL_WEIGHT = 0.35  # x the plan's visual weight x evidence (0..1), added to the fused score
MIN_SUPPORT = 0.3  # label runs keep segments with at least this support
# A whole-picture style the query names, from a labeller that finds it on every
# hand-labelled frame that has it (docs/labels.md: black and white 3 of 3, test pattern
# 9 of 9, each with precision 1.00): a segment without it (at LABEL_FILTER_MIN, the score shown)
# is most likely not the one, so its score is multiplied by ABSENT_STYLE. Not for
# cartoon (recall 0.12: 3D animation is not a flat drawing) nor screen (0.50), whose
# absence says little. Measured on the same index, black and white silent film query
# of the written moment set 2 -> 1 (0.8 and 0.6 alike), nothing else moved on the three
# judged sets; applied to every style, cartoon queries moved too (an msrvtt caption
# 7 -> 2) but that would bury 3D animation the labeller cannot see.
_ABSENCE_TELLS = frozenset({("style", "black and white"), ("style", "test pattern")})
ABSENT_STYLE = 0.8


@dataclass(frozen=True)
class Concept:
    name: str  # the words of the query it came from
    labels: tuple[tuple[str, str, float], ...]  # (kind, label, weight) alternatives


_NUMBERS = {"one": 1, "a": 1, "an": 1, "single": 1, "lone": 1, "two": 2, "couple": 2, "pair": 2, "both": 2,
            "three": 3, "four": 4, "five": 5, "several": 3, "many": 4, "group": 3, "crowd": 5, "2": 2, "3": 3,
            "4": 4, "5": 5}
_MAX_COUNT = 10

# word -> face labels (weights); plural forms listed beside singular ones
_WHO = {
    "man": (("face", "man", 1.0),), "men": (("face", "man", 1.0),), "guy": (("face", "man", 1.0),),
    "guys": (("face", "man", 1.0),), "gentleman": (("face", "man", 1.0),), "boy": (("face", "boy", 1.0), ("face", "man", 0.5)),
    "boys": (("face", "boy", 1.0), ("face", "man", 0.5)),
    "woman": (("face", "woman", 1.0),), "women": (("face", "woman", 1.0),), "lady": (("face", "woman", 1.0),),
    "ladies": (("face", "woman", 1.0),), "girl": (("face", "girl", 1.0), ("face", "woman", 0.6)),
    "girls": (("face", "girl", 1.0), ("face", "woman", 0.6)),
    "child": (("face", "child", 1.0),), "children": (("face", "child", 1.0),), "kid": (("face", "child", 1.0),),
    "kids": (("face", "child", 1.0),), "toddler": (("face", "baby", 1.0), ("face", "child", 0.8)),
    "baby": (("face", "baby", 1.0), ("face", "child", 0.7)), "babies": (("face", "baby", 1.0), ("face", "child", 0.7)),
    "infant": (("face", "baby", 1.0), ("face", "child", 0.7)),
    "elderly": (("face", "elderly", 1.0),), "grandmother": (("face", "elderly", 1.0),),
    "grandfather": (("face", "elderly", 1.0),), "grandma": (("face", "elderly", 1.0),),
    "grandpa": (("face", "elderly", 1.0),),
}
_PEOPLE_NOUNS = set(_WHO) | {"person", "people", "persons", "someone", "somebody", "friends", "players",
                             "dancers", "couple", "family"}
_AGE_ADJ = {"old": ("face", "elderly", 1.0), "older": ("face", "elderly", 1.0), "aged": ("face", "elderly", 1.0),
            "little": ("face", "child", 1.0), "young": ("face", "20-29", 0.7)}
_EMOTION = {
    "smiling": "happy", "smile": "happy", "smiles": "happy", "laughing": "happy", "laughs": "happy",
    "laugh": "happy", "happy": "happy", "grinning": "happy", "cheerful": "happy", "joyful": "happy",
    "sad": "sad", "crying": "sad", "cries": "sad", "upset": "sad", "unhappy": "sad", "tearful": "sad",
    "angry": "angry", "furious": "angry", "shouting": "angry", "mad": "angry",
    "surprised": "surprise", "shocked": "surprise", "astonished": "surprise", "amazed": "surprise",
    "scared": "fear", "afraid": "fear", "frightened": "fear", "terrified": "fear", "disgusted": "disgust",
}
# COCO-80 names (indexer.human_models.COCO_LABELS) and the words people use for them
_OBJECTS = {
    "bicycle": "bicycle", "bicycles": "bicycle", "bike": "bicycle", "bikes": "bicycle", "cyclist": "bicycle",
    "car": "car", "cars": "car", "automobile": "car", "motorcycle": "motorcycle", "motorbike": "motorcycle",
    "motorcycles": "motorcycle", "scooter": "motorcycle", "airplane": "airplane", "aeroplane": "airplane",
    "plane": "airplane", "planes": "airplane", "aircraft": "airplane", "jet": "airplane", "bus": "bus",
    "buses": "bus", "train": "train", "trains": "train", "truck": "truck", "trucks": "truck", "lorry": "truck",
    "boat": "boat", "boats": "boat", "ship": "boat", "ships": "boat", "vessel": "boat", "yacht": "boat",
    "ferry": "boat", "traffic light": "traffic light", "traffic lights": "traffic light",
    "fire hydrant": "fire hydrant", "stop sign": "stop sign", "bench": "bench", "benches": "bench",
    "bird": "bird", "birds": "bird", "cat": "cat", "cats": "cat", "kitten": "cat", "dog": "dog", "dogs": "dog",
    "puppy": "dog", "horse": "horse", "horses": "horse", "sheep": "sheep", "cow": "cow", "cows": "cow",
    "cattle": "cow", "elephant": "elephant", "elephants": "elephant", "bear": "bear", "bears": "bear",
    "zebra": "zebra", "zebras": "zebra", "giraffe": "giraffe", "giraffes": "giraffe", "backpack": "backpack",
    "umbrella": "umbrella", "umbrellas": "umbrella", "handbag": "handbag", "purse": "handbag", "tie": "tie",
    "necktie": "tie", "bow tie": "tie", "suitcase": "suitcase", "luggage": "suitcase", "frisbee": "frisbee",
    "skis": "skis", "skiing": "skis", "snowboard": "snowboard", "ball": "sports ball", "football": "sports ball",
    "soccer ball": "sports ball", "basketball": "sports ball", "kite": "kite", "baseball bat": "baseball bat",
    "baseball glove": "baseball glove", "skateboard": "skateboard", "longboard": "skateboard",
    "skateboarding": "skateboard", "surfboard": "surfboard", "surfing": "surfboard",
    "tennis racket": "tennis racket", "bottle": "bottle", "bottles": "bottle", "wine glass": "wine glass",
    "glass of wine": "wine glass", "cup": "cup", "cups": "cup", "mug": "cup", "fork": "fork", "knife": "knife",
    "spoon": "spoon", "bowl": "bowl", "banana": "banana", "bananas": "banana", "apple": "apple",
    "apples": "apple", "sandwich": "sandwich", "broccoli": "broccoli", "carrot": "carrot", "carrots": "carrot",
    "hot dog": "hot dog", "pizza": "pizza", "donut": "donut", "doughnut": "donut", "cake": "cake",
    "cakes": "cake", "chair": "chair", "chairs": "chair", "armchair": "chair", "couch": "couch",
    "sofa": "couch", "potted plant": "potted plant", "houseplant": "potted plant", "bed": "bed",
    "dining table": "dining table", "table": "dining table", "toilet": "toilet", "tv": "tv",
    "television": "tv", "laptop": "laptop", "laptops": "laptop", "computer mouse": "mouse",
    "remote": "remote", "remote control": "remote", "keyboard": "keyboard", "phone": "cell phone",
    "cell phone": "cell phone", "mobile phone": "cell phone", "smartphone": "cell phone",
    "microwave": "microwave", "oven": "oven", "toaster": "toaster", "sink": "sink", "fridge": "refrigerator",
    "refrigerator": "refrigerator", "book": "book", "books": "book", "clock": "clock", "vase": "vase",
    "scissors": "scissors", "teddy bear": "teddy bear", "hair dryer": "hair drier", "hairdryer": "hair drier",
    "toothbrush": "toothbrush",
}
_STYLE = {
    "black and white": "black and white", "black-and-white": "black and white", "monochrome": "black and white",
    "greyscale": "black and white", "grayscale": "black and white", "b&w": "black and white",
    "cartoon": "cartoon", "cartoons": "cartoon", "animated": "cartoon", "animation": "cartoon",
    "anime": "cartoon", "drawn": "cartoon", "comic": "cartoon",
    "test pattern": "test pattern", "test card": "test pattern", "colour bars": "test pattern",
    "smpte bars": "test pattern",
    "screen recording": "screen", "screencast": "screen", "screen capture": "screen", "screenshot": "screen",
    "terminal": "screen", "command line": "screen", "slide": "screen", "slides": "screen", "desktop": "screen",
}
# What people do, as the poses show it (indexer.pose.ACTIONS): phrases and words ->
# ((action, weight), ...). A still pose is weaker evidence for some verbs than for
# others ("drinking" is a hand at the face; so are eating and a phone call).
_ACTION = {
    "arms raised": (("arms raised", 1.0),), "raising": (("arms raised", 1.0),), "raises": (("arms raised", 1.0),),
    "raised": (("arms raised", 1.0),), "raise": (("arms raised", 1.0),), "hands up": (("arms raised", 1.0),),
    "arms up": (("arms raised", 1.0),), "cheering": (("arms raised", 1.0),), "cheers": (("arms raised", 0.8),),
    "arms out": (("arms out", 1.0),), "outstretched": (("arms out", 1.0),), "stretched out": (("arms out", 1.0),),
    "arms stretched": (("arms out", 1.0),), "arms spread": (("arms out", 1.0),),
    "yoga": (("arms out", 0.8), ("arms raised", 0.6)), "stretching": (("arms out", 0.8), ("arms raised", 0.8)),
    "flailing": (("arms out", 0.7), ("arms raised", 0.7)),
    "drinking": (("hand to face", 1.0),), "drink": (("hand to face", 1.0),), "drinks": (("hand to face", 1.0),),
    "sipping": (("hand to face", 1.0),), "eating": (("hand to face", 0.8),), "eats": (("hand to face", 0.8),),
    "biting": (("hand to face", 0.8),), "on the phone": (("hand to face", 0.8),),
    "to her lips": (("hand to face", 1.0),), "to his lips": (("hand to face", 1.0),),
    "to her cheek": (("hand to face", 1.0),), "to his cheek": (("hand to face", 1.0),),
    "to her face": (("hand to face", 1.0),), "to his face": (("hand to face", 1.0),),
    "sitting": (("sitting", 1.0),), "sits": (("sitting", 1.0),), "seated": (("sitting", 1.0),),
    "lying": (("lying", 1.0),), "lies": (("lying", 0.8),), "laying": (("lying", 1.0),), "asleep": (("lying", 0.8),),
    "sleeping": (("lying", 0.8),),
    "hugging": (("together", 1.0),), "hug": (("together", 1.0),), "hugs": (("together", 1.0),),
    "embracing": (("together", 1.0),), "embrace": (("together", 1.0),), "arm wrestling": (("together", 1.0),),
    "wrestling": (("together", 0.8),), "handshake": (("together", 1.0),), "shaking hands": (("together", 1.0),),
    "holding hands": (("together", 1.0),),
}
_SCENE = {"night": "dark", "at night": "dark", "dark": "dark", "darkness": "dark", "dimly lit": "dark",
          "nighttime": "dark",
          **dict.fromkeys(("indoors", "indoor", "inside", "interior", "room", "living room", "bedroom", "kitchen",
                           "office", "classroom", "studio", "restaurant", "cafeteria", "gym", "bathroom", "hallway",
                           "corridor", "shop", "library", "garage", "at home"), "indoor"),
          **dict.fromkeys(("outdoors", "outdoor", "outside", "open air", "street", "road", "park", "garden", "yard",
                           "backyard", "lawn", "field", "meadow", "forest", "woods", "beach", "sea", "ocean", "lake",
                           "river", "mountain", "mountains", "sky", "city", "rooftop", "terrace", "countryside",
                           "desert", "snow", "snowstorm", "blizzard", "playground", "island", "sidewalk", "harbour",
                           "harbor", "glacier"), "outdoor")}
# A place names where a frame is only by implication ("a kitchen" is indoors): less than
# the words that say it ("indoors", "outside").
_SCENE_SAYS = {"indoors", "indoor", "interior", "outdoors", "outdoor", "outside", "open air"}
_IMPLIED_SCENE_WEIGHT = 0.7
_COLOURS = {"red": "red", "orange": "orange", "yellow": "yellow", "golden": "yellow", "green": "green",
            "cyan": "cyan", "turquoise": "cyan", "blue": "blue", "purple": "purple", "violet": "purple",
            "pink": "pink", "brown": "brown", "black": "black", "white": "white", "grey": "grey", "gray": "grey"}

# Hair: "red-haired", "red hair", "a redhead", "brunette", "dark-haired" name the
# colour of a face's hair (indexer.hair: black, brown, red), not a colour of the frame.
# Light hair is not labelled (indexer.hair), so "blonde", "grey-haired" and "white hair"
# give no concept, and no frame colour either.
_HAIR_WORDS = {"redhead": (("hair", "red", 1.0),), "redheaded": (("hair", "red", 1.0),),
               "brunette": (("hair", "brown", 1.0), ("hair", "black", 0.7))}
_HAIR_COLOUR = {"red": (("hair", "red", 1.0),), "ginger": (("hair", "red", 1.0),), "auburn": (("hair", "red", 1.0),),
                "orange": (("hair", "red", 1.0),), "brown": (("hair", "brown", 1.0),),
                "black": (("hair", "black", 1.0),), "dark": (("hair", "black", 1.0), ("hair", "brown", 0.7))}
_LIGHT_HAIR = frozenset("blonde blond fair golden yellow grey gray white silver".split())
_HAIR_NOUNS = frozenset({"hair", "haired", "hairs"})


def _hair_concept(words: Sequence[str], i: int) -> Concept | None:
    """The hair concept that ``words[i]`` starts ("red" in "red-haired", "red hair"),
    or that it is ("redhead", "blonde", "brunette"); None otherwise."""
    w = words[i]
    nxt = words[i + 1] if i + 1 < len(words) else ""
    if w in _HAIR_COLOUR and nxt in _HAIR_NOUNS:
        return Concept(f"{w} hair", _HAIR_COLOUR[w])
    if w in _LIGHT_HAIR and nxt in _HAIR_NOUNS or w in ("blonde", "blond"):
        return Concept(f"{w} hair", ())  # light hair: no label says it
    if w in _HAIR_WORDS:
        return Concept(w, _HAIR_WORDS[w])
    if w == "ginger" and nxt in _PEOPLE_NOUNS:  # "a ginger man"; "ginger tea" is not hair
        return Concept(w, _HAIR_COLOUR[w])
    return None


VOCABULARY: dict[str, tuple[str, ...]] = {
    "face": ("man", "woman", "boy", "girl", "child", "baby", "elderly", "0-2", "3-12", "13-19", "20-29",
             "30-39", "40-49", "50-59", "60+"),
    "emotion": ("happy", "sad", "angry", "surprise", "fear", "disgust"),
    "object": tuple(sorted(set(_OBJECTS.values()) | {"person", "mouse"})),
    "style": tuple(sorted(set(_STYLE.values()))),
    "scene": ("dark", "indoor", "outdoor"),
    "colour": tuple(sorted(set(_COLOURS.values()))),
    "action": ("arms raised", "arms out", "hand to face", "sitting", "lying", "together"),
    "hair": ("black", "brown", "red"),
}
_PHRASES = sorted({*_OBJECTS, *_STYLE, *_SCENE, *_ACTION}, key=lambda p: -len(p))
_WORD_RE = re.compile(r"[a-z0-9&+]+")


def label_filter_values(kind: str) -> tuple[str, ...]:
    """The labels a ``kind:`` filter accepts (``face:``, ``emotion:``, ``object:``...)."""
    return VOCABULARY.get(kind, ())


def filter_concepts(filters) -> list[Concept]:
    """The concepts a query's label filters require (``object:dog``, ``people>=2``), so
    that the label retriever brings the segments that carry them."""
    out = [Concept(x, ((*x.split(":", 1), 1.0),)) for x in filters.labels]
    r = filters.people_count
    if r is not None:
        counts = [k for k in range(1, _MAX_COUNT + 1) if r.contains(float(k))]
        if counts:
            out.append(Concept("people count", tuple(("people", str(k), 1.0) for k in counts)))
    return out


def _people(n: int) -> Concept:
    return Concept(f"{n} people", tuple(("people", str(k), 1.0 if k == n else 0.5)
                                        for k in range(max(1, n - 1), min(_MAX_COUNT, n + 1) + 1)))


def find_concepts(text: str) -> list[Concept]:
    """The concepts a query's words name, in order, each once."""
    return read_concepts(text)[0]


def coverage(text: str) -> float:
    """The share of a query's content words (not function words) that name a concept of
    ``RANKING_KINDS``: 1.0 for "colour bars test pattern" (all of it is what the frame
    labellers see), 0.44 for "man in a red bow tie talking and pulling faces inside a
    car" (man, bow tie, car: 4 of 9). The planner trusts label evidence more the more of
    the query it explains (add_evidence)."""
    return read_concepts(text)[1]


def read_concepts(text: str) -> tuple[list[Concept], float]:
    """``find_concepts`` and ``coverage`` of ``text`` from one reading: the concepts, and
    the share of content words that went into one of ``RANKING_KINDS`` (a number or an
    age before a person word counts with it)."""
    words_all = _WORD_RE.findall(text.lower().replace("color", "colour"))
    low = " " + " ".join(words_all) + " "
    out: list[Concept] = []
    seen: set[str] = set()
    covered: set[int] = set()  # positions in ``words`` that rank

    def add(c: Concept, *at: int) -> None:
        # one concept a label set; a place said twice ("outside on a lawn") counts once
        scene = all(k == "scene" for k, _, _ in c.labels)
        key = repr(sorted((k, lab) for k, lab, _ in c.labels) if scene else sorted(c.labels))
        if key not in seen:
            seen.add(key)
            out.append(c)
        if _ranks(c):
            covered.update(at)

    rest, phrase_words = _take_phrases(low, add)
    words = rest.split()
    for i, w in enumerate(words):
        prev = words[i - 1] if i else ""
        hair = _hair_concept(words, i)
        if hair is not None:
            if hair.labels:
                add(hair, *((i, i + 1) if i + 1 < len(words) and words[i + 1] in _HAIR_NOUNS else (i,)))
            continue
        if w in _HAIR_NOUNS and i and _hair_concept(words, i - 1) is not None:
            continue  # the "haired" of "red-haired": taken with its colour
        if w in _PEOPLE_NOUNS and prev in _MADE_OF:
            continue  # "a fondant baby", "a plastic man": a thing shaped like a person, no face to see
        if w in _PEOPLE_NOUNS:
            _add_people(words, i, add)
        elif w in ("crowd", "group") and (i + 1 == len(words) or words[i + 1] in ("of",)):
            whom = i + 2 if i + 2 < len(words) and words[i + 2] in _PEOPLE_NOUNS else i  # "group of people"
            add(Concept("group of people", tuple(("people", str(k), 1.0) for k in range(3, _MAX_COUNT + 1))), i, whom)
        elif w in _EMOTION:
            add(Concept(w, (("emotion", _EMOTION[w], 1.0),)), i)
        elif w in _ACTION:
            add(_phrase_concept(w), i)
        elif w in _OBJECTS and w != "orange":
            add(_phrase_concept(w), i)
        elif w in _STYLE or w in _SCENE:
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if w in _SCENE and _SCENE[w] == "dark" and (nxt in _COLOURS or nxt in _BODY_WORDS):
                continue  # "dark green", "dark-haired": not a dark scene
            add(_phrase_concept(w), i)
        elif w in _COLOURS:
            add(Concept(w, (("colour", _COLOURS[w], 1.0),)), i)
    content = sum(1 for w in words_all if w not in _STOP)
    explained = phrase_words + sum(1 for i in covered if i >= 0 and words[i] not in _STOP)
    return out, (min(1.0, explained / content) if content else 0.0)


def _add_people(words: Sequence[str], i: int, add) -> None:
    """The concepts of the person word ``words[i]``: a count ("two women", "a couple",
    "friends"), who (woman, an old man), or someone; passed to ``add`` with the word
    positions they explain."""
    w = words[i]
    prev = words[i - 1] if i else ""
    # "a woman creating a fondant baby": the frames show the hands and the work, not who
    hands = _makes_something(words, i)
    n = _NUMBERS.get(prev)
    if prev in _NUMBERS and n and n >= 2 or w in ("couple",) and prev in ("a", "the"):
        add(_people(n if prev in _NUMBERS and n and n >= 2 else 2), i - 1, i)
    elif (w in ("people", "persons", "friends", "players", "dancers", "family") and prev not in _NUMBERS
          and words[max(0, i - 2):i] not in (["group", "of"], ["crowd", "of"])):
        add(Concept("people", tuple(("people", str(k), 1.0) for k in range(2, _MAX_COUNT + 1))), i)
    if w in _WHO and not hands:
        if prev in _AGE_ADJ:
            add(Concept(prev, (_AGE_ADJ[prev],)), i - 1)
        add(Concept(w, _WHO[w]), *((i - 1, i) if prev in _NUMBERS else (i,)))
    elif w in ("person", "someone", "somebody") and not hands:
        add(Concept("person", (("object", "person", 1.0),)), *((i - 1, i) if prev in _NUMBERS else (i,)))


def _take_phrases(low: str, add) -> tuple[str, int]:
    """The multi-word names in ``low`` (" words joined by spaces "), longest first, each
    passed to ``add`` and taken out of the text: the rest, and how many content words
    the names of ``RANKING_KINDS`` held."""
    rest, explained = low, 0
    for p in _PHRASES:
        if " " in p and f" {p} " in rest:
            after = rest.split(f" {p} ", 1)[1].split()
            if p in _STYLE and _STYLE[p] == "black and white" and after and _describes_a_thing(after[0]):
                continue  # "a black and white dog": the dog's colours, not the picture's
            c = _phrase_concept(p)
            add(c)
            if _ranks(c):
                explained += sum(1 for w in p.split() if w not in _STOP)
            rest = rest.replace(f" {p} ", " ")
    return rest, explained


def _ranks(c: Concept) -> bool:
    """Whether ``c`` has labels of the kinds that rank (``RANKING_KINDS``)."""
    return any(k in RANKING_KINDS and (k, lab) not in _SAYS_LITTLE for k, lab, _ in c.labels)


# Words that carry no content of their own (for coverage).
_STOP = frozenset(
    "a an the and or of in on at to from with without by for into onto over under near next behind beside"
    " above below across along around through while as is are was were be being been it its his her their"
    " this that these those there here some any who which what where when how one's very just".split())


# What a figure can be made of: before a person word it names a thing, not a person.
_MADE_OF = frozenset("toy fondant sugar marzipan clay plasticine plastic paper cardboard lego wooden stone marble"
                     " bronze wax snow chocolate gingerbread plush stuffed porcelain ceramic rubber inflatable"
                     " balloon origami puppet".split())

# Hands-on making: footage of someone making or preparing a thing is framed on the hands
# and the work (cake decorating, cooking, crafts), so the doer's face is not evidence for
# it. Of the clips of this kind in ../shared/media, fondant modelling (c051) and a cotton
# bud dabbing a toy (c052) show no face in any keyframe, batter in a bowl (c010) one face
# of unread gender; the person detector sees the arms in all three.
_HANDS_ON = frozenset(
    "creating creates making makes crafting crafts decorating decorates sculpting sculpts moulding moulds"
    " molding molds shaping shapes carving carves sewing sews knitting knits stitching stitches folding folds"
    " kneading kneads chopping chops slicing slices peeling peels mixing mixes stirring stirs whisking whisks"
    " frosting frosts icing ices baking bakes cooking cooks preparing prepares wrapping wraps gluing glues"
    " soldering solders".split())
_BEFORE_VERB = frozenset("is are was were who carefully slowly".split())
# What is "made" with the face or voice, not the hands: "making faces", "making a speech".
_MADE_IN_PERSON = frozenset("face faces funny jokes joke speech call noise noises sounds sound gestures eyes"
                            " out love announcement toast".split())


def _makes_something(words: Sequence[str], i: int) -> bool:
    """Whether the person named at ``words[i]`` is the doer of a hands-on task ("a woman
    creating a fondant baby", "a man is slicing bread"; not "a man making faces")."""
    j = i + 1
    while j < len(words) and words[j] in _BEFORE_VERB:
        j += 1
    if j >= len(words) or words[j] not in _HANDS_ON:
        return False
    made = [w for w in words[j + 1:j + 4] if w not in ("a", "an", "the", "some", "his", "her", "their")]
    return not (made and made[0] in _MADE_IN_PERSON)


_BODY_WORDS = {"haired", "hair", "skinned", "skin", "eyed", "eyes", "coat", "suit", "jacket", "shirt", "dress"}


def _describes_a_thing(word: str) -> bool:
    return word in _OBJECTS or word in _PEOPLE_NOUNS or word in _BODY_WORDS or word in (
        "animal", "pet", "puppy", "kitten", "cow", "cat", "dog", "bird", "horse", "striped")


def _phrase_concept(p: str) -> Concept:
    if p in _STYLE:
        return Concept(p, (("style", _STYLE[p], 1.0),))
    if p in _SCENE:
        weight = 1.0 if _SCENE[p] == "dark" or p in _SCENE_SAYS else _IMPLIED_SCENE_WEIGHT
        return Concept(p, (("scene", _SCENE[p], weight),))
    if p in _ACTION:
        return Concept(p, tuple(("action", a, wt) for a, wt in _ACTION[p]))
    return Concept(p, (("object", _OBJECTS[p], 1.0),))


def _idf(c: Concept, frequency: tuple[int, Mapping]) -> float:
    n, df = frequency
    seen = min(n, sum(df.get((k, lab), 0) for k, lab, _ in c.labels))
    return math.log((n + 1) / (seen + 1)) + 0.1


def evidence(labels: Mapping[int, Mapping[tuple[str, str], float]], concepts: Sequence[Concept],
             frequency: tuple[int, Mapping]) -> dict[int, float]:
    """Per segment (``labels``: segment id -> {(kind, label): score}), its support for
    the query's concepts: the idf-weighted mean over concepts of the best ``weight x
    score`` among each concept's labels; 0..1."""
    if not concepts:
        return {}
    idf = [_idf(c, frequency) for c in concepts]
    total = sum(idf)
    out: dict[int, float] = {}
    for sid, have in labels.items():
        s = 0.0
        for c, w in zip(concepts, idf):
            s += w * max((wt * have.get((k, lab), 0.0) for k, lab, wt in c.labels), default=0.0)
        if s > 0:
            out[sid] = s / total
    return out


def label_run(index, concepts: Sequence[Concept], limit: int) -> list[tuple[int, float]]:
    """Segments that carry the query's concepts, best supported first: a retriever's
    ranked list (``index.segments_with`` + ``evidence``)."""
    if not concepts:
        return []
    pairs = sorted({(k, lab) for c in concepts for k, lab, _ in c.labels})
    found = index.segments_with(pairs, min_score=0.0, limit=limit * 4)
    ev = evidence(found, concepts, index.label_frequency())
    ranked = sorted(((i, s) for i, s in ev.items() if s >= MIN_SUPPORT), key=lambda x: (-x[1], x[0]))
    return ranked[:limit]


# Concepts that rank. Colour words are left to filters, the "seen" line and the moment
# cut (query.boundaries): a keyframe's dominant colours rarely say the colour of the
# thing a query describes ("a man in a red bow tie"); measured, colour evidence moved
# the written moment set's visual MRR from 0.384 down to 0.362 (docs/labels.md).
# Actions (the opt-in pose labeller) do not rank: with them the public visual queries'
# R@5 fell from 0.714 to 0.643 (a finger to the lips the pose model missed while it
# saw hands at faces elsewhere); they serve ``action:`` filters and the "seen" line.
# Where a frame is (indoors, outdoors: the scene stage) does not rank either: with it the
# written moment set's visual MRR fell from 0.382 to 0.372 (a snowstorm query 4 -> 10:
# most frames of a library are one or the other, so the concept says little); it serves
# ``scene:`` filters and the "seen" line.
# Hair ranks where its colour tells people apart: red. Black and brown hair is most of
# the faces of a library, so "dark-haired" says as little as "indoors" (measured: with
# it ranking, a written query for a dark-haired model fell from rank 4 to 8 as every
# dark-haired face gained); they serve ``hair:`` filters and the "seen" line.
RANKING_KINDS = frozenset({"object", "people", "face", "emotion", "style", "scene", "hair"})
_PLACES = frozenset({("scene", "indoor"), ("scene", "outdoor")})
_COMMON_HAIR = frozenset({("hair", "black"), ("hair", "brown")})
_SAYS_LITTLE = _PLACES | _COMMON_HAIR  # labels of ranking kinds that do not rank


def ranking_concepts(concepts: Sequence[Concept]) -> list[Concept]:
    """``concepts`` less those that only say where a frame is or that its people have
    dark hair (they do not rank)."""
    return [c for c in concepts if not all((k, lab) in _SAYS_LITTLE for k, lab, _ in c.labels)]


def label_weight(visual_weight: float, coverage: float = 0.0) -> float:
    """How much label evidence adds to a fused score: ``LABEL_WEIGHT`` of the visual
    weight for a query the concepts explain little of, rising to all of it for a
    query they explain entirely (``coverage`` 1: "colour bars test pattern", "a
    cartoon dog"), where the labels are the best evidence there is."""
    c = min(1.0, max(0.0, coverage))
    return visual_weight * (LABEL_WEIGHT + (1.0 - LABEL_WEIGHT) * c * c)


def add_evidence(concepts: Sequence[Concept], visual_weight: float, scores: Mapping[int, float],
                 labels: Mapping[int, Mapping[tuple[str, str], float]], frequency: tuple[int, Mapping],
                 coverage: float = 0.0) -> dict[int, float]:
    """The fusion stage's scores plus ``label_weight(visual_weight, coverage) x
    evidence`` of the concepts of ``RANKING_KINDS``."""
    concepts = [c for c in concepts if _ranks(c)]
    ev = evidence({i: labels.get(i, {}) for i in scores}, concepts, frequency)
    w = label_weight(visual_weight, coverage)
    out = {i: s + w * ev.get(i, 0.0) for i, s in scores.items()}
    sure = [c for c in concepts if all((k, lab) in _ABSENCE_TELLS for k, lab, _ in c.labels)]
    if sure:  # a picture named by a labeller that rarely misses it: its absence counts against
        for i in out:
            have = labels.get(i, {})
            if not all(any(have.get((k, lab), 0.0) >= LABEL_FILTER_MIN[k] for k, lab, _ in c.labels) for c in sure):
                out[i] *= ABSENT_STYLE
    return out


def describe(have: Mapping[tuple[str, str], float]) -> str:
    """The "seen:" line of a segment: people count, who, expressions, objects, style,
    light and place, colours, each at the score the product shows (``LABEL_FILTER_MIN``)."""
    def pick(kind: str) -> list[str]:
        return [lab for (k, lab), s in sorted(have.items(), key=lambda x: -x[1]) if k == kind and s >= LABEL_FILTER_MIN[kind]]

    parts: list[str] = []
    counts = [int(x) for x in pick("people")]
    if counts:
        n = max(counts)
        parts.append("1 person" if n == 1 else f"{n}{'+' if n >= _MAX_COUNT else ''} people")
    who = [w for w in pick("face") if not w[0].isdigit()]
    emo = pick("emotion")
    parts += who[:3] + [f"{c} hair" for c in pick("hair")[:2]] + emo[:2]
    parts += pick("action")[:2]
    parts += [o for o in pick("object") if o != "person"][:4]
    scene = pick("scene")
    places = [x for x in scene if ("scene", x) in _PLACES]
    scene = [x for x in scene if x not in places[1:]]  # frames both in and out: the surer one
    parts += pick("style") + scene + pick("colour")[:3]
    return ", ".join(parts)
