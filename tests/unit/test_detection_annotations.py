"""How input annotations and region feedback on one image combine for a detector's training."""

from __future__ import annotations

from visionloop.services.training.detection_learning import TaughtImage


def test_an_annotation_wins_over_feedback_boxes_of_its_concept_where_they_overlap() -> None:
    feedback = TaughtImage("d", truths=[("acme", (0.1, 0.1, 0.5, 0.5)), ("acme", (0.6, 0.6, 0.9, 0.9)),
                                        ("zen", (0.12, 0.1, 0.5, 0.5))],
                           false_positives=[("acme", (0.0, 0.6, 0.3, 0.9))])
    annotation = TaughtImage("d", truths=[("acme", (0.12, 0.1, 0.52, 0.5))],
                             false_positives=[("acme", (0.02, 0.6, 0.3, 0.9))],
                             annotated=frozenset({("acme", (0.12, 0.1, 0.52, 0.5))}))
    both = feedback.with_annotations(annotation)
    assert both.truths == [("acme", (0.12, 0.1, 0.52, 0.5)), ("acme", (0.6, 0.6, 0.9, 0.9)),
                           ("zen", (0.12, 0.1, 0.5, 0.5))]  # another concept's box stays
    assert both.false_positives == [("acme", (0.02, 0.6, 0.3, 0.9))]
    assert [t in both.annotated for t in both.truths] == [True, False, False]
