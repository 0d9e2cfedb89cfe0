"""The built-in models every app gets, under the ids and names the official clients know."""

from __future__ import annotations

import dataclasses

CONCEPT = "concept"
DETECTION = "detection"
EMBEDDING = "embedding"
COLOR = "color"  # dominant colours (data.colors), no concepts
FOCUS = "focus"  # sharpness (data.focus) and in-focus regions
# The runtime of an app's own concept models: the general backbone's features, scored only by the
# heads a version learned (their concepts are the app's, so no ImageNet score applies).
CUSTOM = "custom"
# The runtime of an app's own detection models: nothing until a version learned boxes.
CUSTOM_DETECTOR = "custom_detector"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    model_type: str
    runtime: str
    base_version_id: str
    description: str


GENERAL = ModelSpec("aaa03c23b3724a16a56b629203edc62c", "general-v1.3", CONCEPT, "general",
                    "aa9ca48295b37401f8af92ad1af0d91d",
                    "ImageNet MobileNetV2: 1000 fine-grained concepts plus broader WordNet concepts.")
FACE = ModelSpec("a403429f2ddf4b49b307e318f00e528b", "face-v1.3", DETECTION, "face",
                 "34ce21a40cc24b6b96ffee54aabff139", "Face detection (BlazeFace), regions with concept 'face'.")
EMBED = ModelSpec("bbb5f41425b8468d9b7a554ff10f8581", "general-v1.3-embed", EMBEDDING, "embedding",
                  "bb186755eda04f9cbb6fe32e816be104", "1280-d image embedding from the general model's backbone.")
LOGO = ModelSpec("c443119bf2ed4da98487520d01a0b1e3", "logo", DETECTION, "logo",
                 "ef7c4a5a7c764b94b5b5b3b1f1e5e1b0",
                 "Logo regions. No offline logo weights exist, so the base version detects nothing; "
                 "versions trained from region feedback learn the app's logos.")

# Clarifai's public models that can be served honestly offline (docs/public-models.md): under the
# ids the official clients hold and the names Clarifai gave them.
NSFW = ModelSpec("e9576d86d2004ed1a38ba0cf39ecb4b1", "nsfw-v1.0", CONCEPT, "nsfw",
                 "aa47919c9a8d4d94bfa283121281bcc4",
                 "Concepts 'sfw' and 'nsfw' from NudeNet's body-part detector: nsfw is its highest "
                 "confidence for an exposed sexual body part.")
COLOR_MODEL = ModelSpec("eeed0b6733a644cea07cf4c60f87ebb7", "color", COLOR, "color",
                        "3215824192f14425be24b083d0e41118",
                        "Dominant colours (median cut), each named by its nearest W3C/CSS3 colour.")
FOCUS_MODEL = ModelSpec("c2cf7cecd8a6427da375b9f35fcd2381", "focus", FOCUS, "focus",
                        "09da21a3acf24ea3a582e847ef2e72d3",
                        "Sharpness from the variance of the Laplacian, and the in-focus cells of a 4x4 grid.")
FOOD = ModelSpec("bd367be194cf45149e75f01d59f77ba7", "food-items-v1.0", CONCEPT, "food",
                 "a9bf9b88710b4886aa0aca56520ab878",
                 "The general model's scores for the ImageNet classes under WordNet 'food' (46) and the "
                 "broader food concepts; not a dedicated food model.")
APPAREL = ModelSpec("e0be3b9d6a454f0493ac3a30784001ff", "apparel", CONCEPT, "apparel",
                    "364171efd18a47a8bbbf2d139d7020ff",
                    "The general model's scores for the ImageNet classes under WordNet 'clothing' (49) and "
                    "the broader clothing concepts; no shoes or bags; not a dedicated apparel model.")
# A general-model view: its runtime name -> the WordNet concept whose classes it keeps.
DOMAINS: dict[str, str] = {FOOD.runtime: "n00021265", APPAREL.runtime: "n03051540"}

BUILTIN: tuple[ModelSpec, ...] = (GENERAL, FACE, EMBED, LOGO, NSFW, COLOR_MODEL, FOCUS_MODEL, FOOD, APPAREL)


@dataclasses.dataclass(frozen=True)
class UnavailableModel:
    """A Clarifai public model with no offline weights: its id answers that it is not served here."""

    id: str
    name: str | None  # the name Clarifai gave it, where the official client's tests show it
    what: str


UNAVAILABLE: tuple[UnavailableModel, ...] = (
    UnavailableModel("e466caa0619f444ab97497640cefc4dc", "celeb-v1.3", "Clarifai's celebrity model"),
    UnavailableModel("c0c0ac362b03416da06ab3fa36fb58e3", "demographics", "Clarifai's demographics model"),
    UnavailableModel("d02b4508df58432fbb84e800597b8959", None, "Clarifai's face embedding model"),
    UnavailableModel("bec14810deb94c40a05f1f0eb3c91403", None, "Clarifai's landscape quality model"),
    UnavailableModel("d16f390eb32cad478c7ae150069bd2c6", "moderation", "Clarifai's moderation model"),
    UnavailableModel("de9bd05cfdbf4534af151beb2a5d0953", None, "Clarifai's portrait quality model"),
    UnavailableModel("fbefb47f9fdb410e8ce14f24f54b47ff", None, "Clarifai's textures & patterns model"),
    UnavailableModel("eee28c313d69466f836ab83287a54ed9", "travel-v1.0", "Clarifai's travel model"),
    UnavailableModel("c386b7a870114f4a87477c0824499348", "weddings-v1.0", "Clarifai's wedding model"),
    UnavailableModel("cccbe437d6e54e2bb911c6aa292fb072", None, "Clarifai's cluster model"),  # the JS client's
)
