"""The built-in models every app gets, under the ids and names the official clients know."""

from __future__ import annotations

import dataclasses

CONCEPT = "concept"
DETECTION = "detection"
EMBEDDING = "embedding"
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

BUILTIN: tuple[ModelSpec, ...] = (GENERAL, FACE, EMBED, LOGO)
