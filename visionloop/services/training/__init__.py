"""From the feedback log to better model versions: datasets, training, evaluation, promotion.

The algorithms live in :mod:`visionloop.learning` (pure, no database); this package reads the
store, calls them, and writes immutable model versions and their metrics.
"""
