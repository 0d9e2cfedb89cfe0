"""From feedback to better models: aggregate -> evaluate -> train -> promote.

Pure functions and scikit-learn-style estimators, no HTTP and no database, so every step can be
rebuilt from the append-only feedback log and tested on tiny hand-computed fixtures:

- :mod:`.labels` turns votes into labels, weighting each end user by estimated reliability;
- :mod:`.metrics_concepts`, :mod:`.metrics_regions`, :mod:`.metrics_search` evaluate a version;
- :mod:`.heads`, :mod:`.region_calibration`, :mod:`.click_model` learn from the labels and clicks;
- :mod:`.promotion` decides whether a candidate version replaces the current one;
- :mod:`.split` keeps a stable held-out set as the log grows; :mod:`.events` reads the feedback
  log's normalized bodies; :mod:`.estimates`, :mod:`.boxes`, :mod:`.params` are shared helpers.
"""
