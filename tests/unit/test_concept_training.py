"""Cross-validated promotion of concept heads on fixed fixtures (no database, no network)."""

from __future__ import annotations

import numpy as np

from visionloop.inference.runtime import ModelRuntime
from visionloop.learning.heads import ConceptHeads
from visionloop.learning.labels import Vote, aggregate
from visionloop.services.training.concept_training import InsufficientData, train_heads
from visionloop.services.training.data import ConceptData, display

CENTERS = np.random.default_rng(7).normal(size=(3, 16)) * 2.0


def dataset(n: int, concept: str, *, positives: int | None = None, seed: int = 0, first: int = 1
            ) -> tuple[ConceptData, dict[str, np.ndarray]]:
    """``n`` images, about half showing ``concept`` (or exactly ``positives``), one vote each; image i
    is labelled by feedback event ``first + i``."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) < (n // 2 if positives is None else positives)
    feats = {f"img-{seed}-{i}": CENTERS[0 if yes else 1 + i % 2] + rng.normal(size=16) for i, yes in enumerate(y)}
    votes = [Vote((d, concept), f"user-{i % 3}", bool(yes)) for i, (d, yes) in enumerate(zip(feats, y))]
    first_seq = {d: first + i for i, d in enumerate(feats)}
    return ConceptData(aggregate(votes), {"n02121808": "cat"}, n, first + n - 1, first_seq), feats


def train(data: ConceptData, feats: dict[str, np.ndarray], champion: ConceptHeads | None = None,
          champion_last_seq: int = 0) -> object:
    messages: list[str] = []
    trained = train_heads(data, feats, ModelRuntime(), "custom", champion, champion_last_seq=champion_last_seq,
                          salt="app", blend_k=20.0, progress=messages.append)
    assert messages[-1] == trained.decision.reason
    return trained


def test_every_labelled_image_trains_and_a_new_concept_goes_live_on_its_own_evidence() -> None:
    data, feats = dataset(60, "texture")
    trained = train(data, feats)
    assert trained.n_train == 60 and trained.heads.n_labels_.tolist() == [60]  # nothing held out
    assert trained.decision.promote, trained.decision.reason
    assert trained.decision.reason.startswith("promoted: new concepts go live on their own evidence: texture: "
                                              "cross-validated AUC")
    assert trained.holdout["method"] == "cross-validation"
    assert trained.holdout["new_concepts"]["texture"]["n_pos"] == 30


def test_a_thin_new_concept_is_refused_by_name_with_what_is_missing() -> None:
    data, feats = dataset(40, "n02121808", positives=7)
    trained = train(data, feats)
    assert not trained.decision.promote
    assert trained.decision.reason.startswith(
        "refused: new concept not ready: cat (n02121808): 7 positive and 33 negative labels; 3 more positive "
        "labels of cat (n02121808) would let its cross-validated AUC count")


def test_too_few_labels_name_the_concept_and_count_all_its_labels() -> None:
    data, feats = dataset(12, "n02121808", positives=4)
    try:
        train(data, feats)
    except InsufficientData as exc:
        assert "cat (n02121808): 4 positive labels, fewer than 5" in str(exc)
    else:
        raise AssertionError("trained on 4 positives")


def test_shared_concepts_are_compared_on_images_the_champion_has_not_learned_from() -> None:
    old, old_feats = dataset(60, "texture", seed=1)
    champion = train(old, old_feats).heads
    new, new_feats = dataset(60, "texture", seed=2, first=61)
    votes = [*old.aggregation.labels.values(), *new.aggregation.labels.values()]
    both = ConceptData(aggregate([Vote(lab.item, "user", lab.value) for lab in votes]), {}, 120, 120,
                       {**old.first_seq, **new.first_seq})
    trained = train(both, {**old_feats, **new_feats}, champion, champion_last_seq=old.last_seq)
    assert trained.n_train == 120 and trained.n_compared == 60  # the champion's own images are left out
    assert trained.holdout["n_labels"] == 60 and trained.holdout["new_concepts"] == {}
    assert trained.decision.promote and "macro_auc" in trained.decision.reason
    # nothing new since the champion: nothing to compare on, and the refusal says what would help
    again = train(old, old_feats, champion, champion_last_seq=old.last_seq)
    assert not again.decision.promote
    assert again.decision.reason.startswith("refused: every labelled image taught the current version too")
    assert again.decision.reason.endswith("feedback on new images would")


def test_names_are_shown_with_their_ids_where_they_differ() -> None:
    assert display("n02121808", {"n02121808": "cat"}) == "cat (n02121808)"
    assert display("texture", {"texture": "texture"}) == "texture" == display("texture", {})


def test_a_thin_comparison_says_how_many_more_labels_would_count() -> None:
    old, old_feats = dataset(60, "texture", seed=1)
    champion = train(old, old_feats).heads
    new, new_feats = dataset(6, "texture", seed=3, first=61)  # 3 positive and 3 negative fresh labels
    votes = [*old.aggregation.labels.values(), *new.aggregation.labels.values()]
    both = ConceptData(aggregate([Vote(lab.item, "user", lab.value) for lab in votes]), {}, 66, 66,
                       {**old.first_seq, **new.first_seq})
    trained = train(both, {**old_feats, **new_feats}, champion, champion_last_seq=old.last_seq)
    assert not trained.decision.promote and trained.n_compared == 6
    assert trained.decision.reason.startswith("refused: macro_auc: the candidate's")
    assert trained.decision.reason.endswith(
        "; 7 more positive and 7 more negative labels of the concepts it shares with the current version on "
        "images the current version has not learned from would let the comparison count")
