"""ImageNet classes and the broader concepts derived from WordNet."""

from __future__ import annotations

import numpy as np
import pytest

from visionloop.inference.concepts import ImageNetConcepts


def test_classes_are_the_1000_wordnet_ids_in_torchvision_order(concepts: ImageNetConcepts) -> None:
    ids = [c.id for c in concepts.classes]
    assert len(ids) == 1000 and ids == sorted(ids)
    assert ids[0] == "n01440764" and ids[-1] == "n15075141"
    assert concepts.classes[281].id == "n02123045" and concepts.classes[281].name == "tabby cat"
    assert concepts.classes[967].name == "espresso"


def test_ids_and_names_are_unique(concepts: ImageNetConcepts) -> None:
    assert len({c.id for c in concepts.concepts}) == len(concepts)
    assert len({c.name for c in concepts.concepts}) == len(concepts)


def test_broader_concepts_follow_the_wordnet_hierarchy(concepts: ImageNetConcepts) -> None:
    cats = {c.name for c in concepts.members("n02121808")}
    assert cats == {"tabby cat", "tiger cat", "Persian cat", "Siamese cat", "Egyptian Mau"}
    assert concepts.concepts[concepts.index("n02121808")].name == "cat"
    dogs = concepts.members("n02084071")
    assert len(dogs) == 118 and "Golden Retriever" in {c.name for c in dogs}
    assert "sports car" in {c.name for c in concepts.members("n04524313")}  # vehicle
    assert "strawberry" in {c.name for c in concepts.members("n00021265")}  # food
    assert "sports car" not in {c.name for c in concepts.members("n03094503")}  # not a container
    assert concepts.members("n02123045") == (concepts.classes[281],)


def test_there_is_a_useful_set_of_broader_concepts(concepts: ImageNetConcepts) -> None:
    names = {c.name for c in concepts.broader}
    assert 40 <= len(names) <= 90
    assert {"dog", "cat", "bird", "vehicle", "car", "food", "fruit", "furniture", "fish", "insect",
            "musical instrument", "building"} <= names
    assert "person" not in names  # ImageNet-1k cannot say so honestly


def test_broader_scores_sum_their_classes(concepts: ImageNetConcepts) -> None:
    probs = np.zeros((2, 1000), np.float32)
    probs[0, [281, 282]] = [0.5, 0.25]  # tabby, tiger cat
    probs[0, 207] = 0.25  # golden retriever
    probs[1] = 1 / 1000
    scores = concepts.scores(probs)
    assert scores.shape == (2, len(concepts))
    assert scores[0, concepts.index("n02121808")] == pytest.approx(0.75)
    assert scores[0, concepts.index("n02084071")] == pytest.approx(0.25)
    assert scores[0, concepts.index("n00015388")] == pytest.approx(1.0)  # animal
    assert scores[1].max() <= 1.0
    np.testing.assert_array_equal(scores[:, :1000], probs)


def test_top_is_sorted_and_respects_min_score(concepts: ImageNetConcepts) -> None:
    probs = np.zeros((1, 1000), np.float32)
    probs[0, [281, 967]] = [0.7, 0.3]
    top = concepts.top(concepts.scores(probs)[0], k=50, min_score=0.2)
    scores = [s.score for s in top]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.2
    assert top[0].score == pytest.approx(0.7)
