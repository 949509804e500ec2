"""rampsearch: neural architecture search over the frequency ramp of iFormer.

The application around the model (``iformer``) and the search spaces (``search_spaces``):
the command line (``cli``, ``commands``, shared flags in ``options``), the validated plan of a
search (``plan``), the Optuna study and its vocabulary of statuses, roles and attribute keys
(``study``, ``states``), the Ray-free bookkeeping of trials (``bookkeeping``) apart from their
execution on Ray Tune (``search``), the proxy data and recipe (``data``, ``proxy``) on the one
training loop (``engine``), the objective (``objective``), seed-paired statistics and the race
of the leaders against the paper's ramp (``paired``, ``race``, ``ranking``), the leaderboard,
report and export, the proxy-fidelity measurement (``fidelity``, ``zero_cost``) and the full
ImageNet recipe and trainer (``recipe``, ``train``). It is the only package that imports
optuna, ray, pandas and plotly.
"""
