"""``visionloop evaluate``'s table: concepts by name, label counts, figures with intervals."""

from __future__ import annotations

from visionloop.services.training.report import metrics_table


def estimate(value: float | None, n: int = 40, too_few: bool = False) -> dict:
    low, high = (None, None) if value is None else (value - 0.05, min(1.0, value + 0.05))
    return {"value": value, "low": low, "high": high, "n": n, "too_few": too_few}


def test_concepts_by_name_with_counts_and_intervals() -> None:
    live = {"macro_auc": estimate(0.9, 60), "top_concept_accuracy": estimate(None, 0, True),
            "concepts": {
                "n02121808": {"name": "cat", "n_pos": 20, "n_neg": 30, "too_few": False, "precision": estimate(0.8),
                              "recall": estimate(0.7), "f1": estimate(0.75), "roc_auc": estimate(0.93)},
                "texture": {"name": "texture", "n_pos": 3, "n_neg": 7, "too_few": True, "precision": estimate(None),
                            "recall": estimate(0.0), "f1": estimate(None), "roc_auc": estimate(0.6)}},
            "confusion": {"labels": [], "names": [], "matrix": []}, "unlinked_events": 2}
    lines = metrics_table(live).splitlines()
    assert lines[0].split() == ["concept", "labels", "+/-", "precision", "recall", "ROC", "AUC"]
    assert lines[1].split() == ["cat", "(n02121808)", "20/30", "0.80", "[0.75,", "0.85]", "0.70", "[0.65,", "0.75]",
                                "0.93", "[0.88,", "0.98]"]
    assert lines[2].split()[:4] == ["texture", "*", "3/7", "-"]
    assert "macro ROC AUC: 0.90 [0.85, 0.95] on 60 labels" in lines
    assert "top concept accuracy: - on 0 labels *" in lines and "unlinked events: 2" in lines
    assert lines[-1].startswith("* fewer than 10 labels")


def test_a_detection_model_shows_its_boxes() -> None:
    region = {"tp": 5, "fp": 1, "fn": 2, "n_judged": 8, "too_few": True, "precision": estimate(0.83),
              "recall": estimate(0.71), "f1": estimate(0.77)}
    lines = metrics_table({"summary": region, "concepts": {"face": region}}).splitlines()
    assert lines[0].split() == ["concept", "TP/FP/FN", "precision", "recall", "F1"]
    assert lines[1].split()[:3] == ["face", "*", "5/1/2"]
    assert any(line.startswith("all regions: precision 0.83") for line in lines)
