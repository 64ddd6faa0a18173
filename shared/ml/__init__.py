"""Online models shared by the domain services (and measured as-is by the benchmarks).

River's vocabulary: `learn_one`, `predict_one`, `score_one`; features are dicts.
"""
