"""Online models shared by the domain services (and measured as-is by the benchmarks).

River's vocabulary: `learn_one`, `predict_one`, `score_one`; features are dicts.
"""

from shared.ml.deferred import HEAVY, defer

# Before any model module imports River: see shared.ml.deferred.
for _package in HEAVY:
    defer(_package)
