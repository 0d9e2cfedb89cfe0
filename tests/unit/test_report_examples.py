"""The report's examples by concept: what a version gets right, wrong and misses, by concept name."""

from __future__ import annotations

from PIL import Image

from visionloop.learning.metrics_concepts import ConceptRecord
from visionloop.services.training.report import example_concepts, pick_examples


def test_the_best_labelled_concepts_show_what_they_get_right_wrong_and_miss() -> None:
    records = [ConceptRecord("o1", "cat", 0.9, True), ConceptRecord("o2", "cat", 0.8, False),
               ConceptRecord("o3", "cat", 0.7, True), ConceptRecord("o4", "cat", 0.95, True),
               ConceptRecord("o5", "cat", 0.3, True),   # below the threshold: missed
               ConceptRecord("o6", "cat", 0.2, False),
               ConceptRecord("o1", "dog", 0.6, False), ConceptRecord("o7", "bird", 0.9, True)]
    examples = pick_examples(records, 0.5, concepts=2, per_kind=2)
    assert [e.concept for e in examples] == ["cat", "bird"]  # by label count, then name
    cat = examples[0]
    assert [r.output_id for r in cat.right] == ["o4", "o1"] and [r.output_id for r in cat.wrong] == ["o2"]
    assert [r.output_id for r in cat.missed] == ["o5"]  # the lowest-scored positives
    assert pick_examples([], 0.5) == []


def test_the_plot_leaves_out_outputs_whose_image_is_gone() -> None:
    examples = pick_examples([ConceptRecord("o1", "n02121808", 0.9, True), ConceptRecord("o2", "n02121808", 0.8, False)],
                             0.5)
    picture = Image.new("RGB", (300, 200), "orange")
    assert example_concepts(examples, {"o1": picture}, {"n02121808": "cat"})  # a base64 PNG
    assert example_concepts(examples, {}, {"n02121808": "cat"}) is None
