"""Ranking a study: the leaderboard, seed-paired differences (``paired``), the race's pure
rules (``race``), its results replayed from the study (``race_results``) and the race a
command asks for (``race_request``).

May import: ``study``, ``training``, ``data``, ``errors``, ``attributes``. Never Ray.
"""
