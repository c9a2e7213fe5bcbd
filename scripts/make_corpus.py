#!/usr/bin/env python
"""Write publisher/runtime/data/corpus.json: the evaluation and calibration corpus.

The sentences below are original, plain English. Phonemes come from misaki's espeak-ng
G2P (offline, deterministic for a given misaki/espeakng-loader): en-gb for ``b*`` voices,
en-us otherwise. Characters outside Kokoro's vocab are dropped here, so the shipped
phonemes are vocab-only and nothing downstream needs a G2P.

    python scripts/make_corpus.py            # (re)write the packaged file
    python scripts/make_corpus.py --check    # regenerate in memory, compare, exit 1 on drift
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path
from typing import Any

from publisher.runtime.constants import MAX_PHONEMES, SAMPLE_RATE
from publisher.runtime.corpus import CORPUS_VERSION, dumps, parse_corpus
from publisher.runtime.errors import PublisherError
from publisher.runtime.text import packaged_vocab, phonemize

DEFAULT_OUTPUT = (
    Path(__file__).resolve().parent.parent / "publisher" / "runtime" / "data" / "corpus.json"
)
VOICES = ("af_heart", "af_bella", "am_adam", "bf_emma", "bm_george")

# (id, voice, speed, text)
EVAL = [
    ("short-1", "af_heart", 1.0, "The kettle is boiling."),
    ("short-2", "bm_george", 0.8, "Please close the window."),
    ("short-3", "am_adam", 1.0, "Where did you park?"),
    (
        "medium-1",
        "af_bella",
        1.0,
        "The library opens at nine on weekdays, but on Sundays it stays closed until noon. "
        "Remember to bring your card if you want to borrow more than three books.",
    ),
    (
        "medium-2",
        "bf_emma",
        1.0,
        "After the storm passed, the fishermen pulled their boats back into the harbour "
        "and checked the nets for damage.",
    ),
    (
        "medium-3",
        "af_heart",
        1.5,
        "Could you send me the report by Friday? "
        "I need a few days to review the numbers before the meeting.",
    ),
    (
        "medium-4",
        "bm_george",
        1.0,
        "Seventeen cyclists climbed the mountain pass in thick fog, "
        "and only two of them reached the summit before sunset.",
    ),
    (
        "long-1",
        "am_adam",
        1.0,
        "Every spring, the village holds a small market in the square beside the old stone "
        "bridge. Farmers arrive before dawn with crates of radishes, early lettuce, and jars "
        "of honey, while bakers set out warm loaves on wooden tables. Children chase each "
        "other between the stalls, and a brass band plays cheerful tunes near the fountain. "
        "By midday the crowd is thick, the air smells of fresh bread and coffee, and most of "
        "the sellers have already packed up their empty baskets.",
    ),
    (
        "long-2",
        "bf_emma",
        1.0,
        "To assemble the bookshelf, first lay all the panels on a soft blanket so they do "
        "not get scratched. Attach the two side panels to the base with the short screws, "
        "making sure the smooth edges face forward. Next, slide the back board into its "
        "groove and fix the top shelf with the long screws. Finally, tighten every screw by "
        "hand, place the unit against a wall, and use the small metal bracket to anchor it "
        "firmly to the wall so that it can never tip over.",
    ),
    (
        "long-3",
        "af_bella",
        1.2,
        "Our train left the city a little after six in the morning. For the first hour, the "
        "tracks followed a wide grey river, and we watched herons standing perfectly still "
        "in the shallow water. Later the landscape opened into rolling hills covered with "
        "sheep, stone walls, and tiny farmhouses with smoking chimneys. When the conductor "
        "finally announced our stop, we were surprised to see fresh snow on the platform, "
        "although the sky above the little station was bright and clear.",
    ),
]

# The word-error-rate set: Harvard sentences (IEEE Recommended Practice for Speech Quality
# Measurements, 1969; lists 1-3, public domain), phonetically balanced and plain, read by
# three female and three male voices (US and UK) in turn.
SPEECH_VOICES = ("af_heart", "am_michael", "bf_emma", "bm_george", "af_bella", "am_adam")
HARVARD = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
)
SPEECH = [
    (f"speech-{k + 1:02d}", SPEECH_VOICES[k % len(SPEECH_VOICES)], 1.0, text)
    for k, text in enumerate(HARVARD)
]
# The set the conformance matrix hears each text runtime speak (conformance/heard.py): the
# same sentences in two American voices in turn, so ours has US phonemes for every one.
HEARD_VOICES = ("af_heart", "am_michael")
HEARD = [
    (f"heard-{k + 1:02d}", HEARD_VOICES[k % len(HEARD_VOICES)], 1.0, text)
    for k, text in enumerate(HARVARD)
]

CALIBRATION = [
    ("cal-1", "af_heart", 1.0, "Good morning, everyone."),
    ("cal-2", "am_adam", 0.9, "The soup needs a pinch more salt."),
    (
        "cal-3",
        "bf_emma",
        1.0,
        "Turn left at the second traffic light, then keep going straight until you see the "
        "bakery on the corner.",
    ),
    (
        "cal-4",
        "bm_george",
        1.1,
        "My grandmother grew tomatoes, beans, and sunflowers in a narrow garden behind her house.",
    ),
    ("cal-5", "af_bella", 1.3, "Is this seat taken?"),
    (
        "cal-6",
        "af_heart",
        0.8,
        "The museum's new exhibit shows how ancient sailors used the stars to find their way "
        "across open water.",
    ),
    (
        "cal-7",
        "am_adam",
        1.0,
        "Thank you for waiting. Your table will be ready in about ten minutes.",
    ),
    (
        "cal-8",
        "bf_emma",
        1.2,
        "Bright yellow kites drifted above the beach while the tide slowly crept toward the dunes.",
    ),
    ("cal-9", "bm_george", 1.0, "Wow! That was the loudest thunder I have ever heard."),
    (
        "cal-10",
        "af_bella",
        0.9,
        "Water boils at one hundred degrees Celsius at sea level, but at lower temperatures "
        "high in the mountains.",
    ),
    ("cal-11", "af_heart", 1.5, "Don't forget your umbrella."),
    (
        "cal-12",
        "am_adam",
        1.0,
        "The committee will vote on the proposal next Tuesday, after every member has had a "
        "chance to read the full budget and ask questions about the costs.",
    ),
    (
        "cal-13",
        "bf_emma",
        0.8,
        "She tuned her violin, took a deep breath, and began to play a slow, quiet melody.",
    ),
    ("cal-14", "bm_george", 1.2, "How many eggs do we need for the pancakes?"),
    (
        "cal-15",
        "af_bella",
        1.0,
        "Our neighbours adopted a shy grey cat that hides under the sofa whenever the "
        "doorbell rings.",
    ),
    (
        "cal-16",
        "af_heart",
        1.1,
        "Press the green button once to start the machine, and hold it for three seconds to "
        "switch it off again.",
    ),
    (
        "cal-17",
        "am_adam",
        1.3,
        "The path through the forest was muddy, so we walked slowly and stopped often to "
        "listen to the birds.",
    ),
    ("cal-18", "bf_emma", 1.5, "Quick, grab the ladder before it falls!"),
    (
        "cal-19",
        "bm_george",
        0.9,
        "Engineers measured the bridge every month for a year to make sure the new supports "
        "were holding the weight of the heavy lorries.",
    ),
    (
        "cal-20",
        "af_bella",
        1.0,
        "I usually read the news over breakfast, although lately I have been listening to "
        "podcasts on my way to work instead.",
    ),
    (
        "cal-21",
        "af_heart",
        1.2,
        "Zebras, giraffes, and elephants gathered at the water hole as the sun went down.",
    ),
    (
        "cal-22",
        "am_adam",
        1.0,
        "The recipe calls for two cups of flour, half a cup of sugar, one egg, and a splash "
        "of milk. Mix everything gently and bake it for twenty minutes.",
    ),
    ("cal-23", "bf_emma", 1.1, "Could you speak a little louder, please?"),
    (
        "cal-24",
        "bm_george",
        1.0,
        "When the power went out, the whole street gathered outside with candles and "
        "flashlights. Someone brought a guitar, another neighbour carried out a pot of hot "
        "chocolate, and before long the evening felt more like a party than an emergency. "
        "Nobody wanted to go home when the lights finally came back on.",
    ),
]

# Length buckets the eval section must cover (phoneme counts, inclusive).
SHORT = (10, 30)
MEDIUM = (60, 200)
LONG = (450, MAX_PHONEMES)


def lang_of(voice: str) -> str:
    return "en-gb" if voice.startswith("b") else "en-us"


def make_item(item_id: str, voice: str, speed: float, text: str) -> dict[str, Any]:
    vocab = packaged_vocab()
    raw = phonemize(text, lang_of(voice), g2p="misaki.espeak")
    phonemes = "".join(ch for ch in raw if ch in vocab).strip()
    return {"id": item_id, "text": text, "phonemes": phonemes, "voice": voice, "speed": speed}


def build() -> dict[str, Any]:
    """The corpus as a dict, validated; raises PublisherError when a rule is broken."""
    data = {
        "version": CORPUS_VERSION,
        "sample_rate": SAMPLE_RATE,
        "eval": [make_item(*spec) for spec in EVAL],
        "calibration": [make_item(*spec) for spec in CALIBRATION],
        "speech": [make_item(*spec) for spec in SPEECH],
        "heard": [make_item(*spec) for spec in HEARD],
    }
    corpus = parse_corpus(data, where="generated corpus")  # vocab, lengths, ids, speeds
    lengths = [it.n_phonemes for it in corpus.eval]
    for name, (lo, hi), need in (("short", SHORT, 1), ("medium", MEDIUM, 1), ("long", LONG, 2)):
        if sum(lo <= n <= hi for n in lengths) < need:
            raise PublisherError(f"eval needs {need}+ {name} items with {lo}-{hi} phonemes")
    if {it.voice for it in corpus.eval} != set(VOICES):
        raise PublisherError(f"eval must use exactly the voices {VOICES}")
    if not {0.8, 1.5} <= {it.speed for it in corpus.eval}:
        raise PublisherError("eval must include speeds 0.8 and 1.5")
    eval_sentences = {s for it in corpus.eval for s in sentences(it.text)}
    for it in corpus.calibration:
        if eval_sentences & set(sentences(it.text)):
            raise PublisherError(f"calibration item {it.id} repeats an eval sentence")
    return data


def sentences(text: str) -> list[str]:
    return [s.strip().lower() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--check", action="store_true", help="compare with --output instead of writing it"
    )
    args = parser.parse_args(argv)
    try:
        text = dumps(build())
    except PublisherError as err:
        print(f"make_corpus: {err}", file=sys.stderr)
        return 2
    if args.check:
        current = args.output.read_text("utf-8") if args.output.exists() else ""
        if current == text:
            print(f"{args.output}: up to date")
            return 0
        diff = difflib.unified_diff(
            current.splitlines(), text.splitlines(), "shipped", "regenerated", lineterm="", n=1
        )
        print(f"{args.output}: differs from a fresh generation", file=sys.stderr)
        print("\n".join(list(diff)[:60]), file=sys.stderr)
        return 1
    args.output.write_text(text, "utf-8")
    print(
        f"wrote {args.output}: {len(EVAL)} eval, {len(CALIBRATION)} calibration, "
        f"{len(SPEECH)} speech, {len(HEARD)} heard items"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
