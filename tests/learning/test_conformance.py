"""scikit-learn's estimator contract, for the estimators of visionloop.learning.

The full ``parametrize_with_checks`` suite assumes single-output targets with arbitrary class
labels; ``ConceptHeads`` takes a multi-label 0/1/NaN matrix, ``ClickModel`` takes search
sessions , ``ClickMemory`` click observations and ``BoxDetector``
feature maps with boxes, so those data checks cannot apply. The checks below are the ones about the contract
itself — parameters stored as given, cloning, repr, fitted-state checks, input validation — and
they run unchanged from sklearn so a new sklearn release keeps us honest.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sklearn.base import BaseEstimator
from sklearn.utils import estimator_checks as checks

from visionloop.learning.click_memory import ClickMemory
from visionloop.learning.click_model import ClickModel
from visionloop.learning.detector import BoxDetector
from visionloop.learning.heads import ConceptHeads

CONTRACT = [
    checks.check_estimator_cloneable,
    checks.check_estimator_repr,
    checks.check_no_attributes_set_in_init,
    checks.check_parameters_default_constructible,
    checks.check_get_params_invariance,
    checks.check_set_params,
    checks.check_do_not_raise_errors_in_init_or_set_params,
    checks.check_estimators_unfitted,
]
# Fitting on sklearn's generated X with a 0/1 target is meaningful for the heads.
FITTING = [
    checks.check_fit_check_is_fitted,
    checks.check_fit_idempotent,
    checks.check_n_features_in,
    checks.check_fit2d_1sample,
    checks.check_fit1d,
    checks.check_estimators_nan_inf,
    checks.check_estimators_empty_data_messages,
    checks.check_complex_data,
]

CASES = [(est, check) for est in (ConceptHeads(), ClickModel(), ClickMemory(), BoxDetector())
         for check in CONTRACT]
CASES += [(ConceptHeads(), check) for check in FITTING]


@pytest.mark.parametrize(("estimator", "check"), CASES,
                         ids=[f"{type(e).__name__}-{c.__name__}" for e, c in CASES])
def test_sklearn_contract(estimator: BaseEstimator, check: Callable[[str, BaseEstimator], None]) -> None:
    check(type(estimator).__name__, estimator)
