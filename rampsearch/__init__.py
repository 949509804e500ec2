"""rampsearch: neural architecture search over the frequency ramp of iFormer.

The application around the model (``iformer``) and the search spaces (``search_spaces``), in
layers; a module imports only from its own layer and the layers below it
(``tests/test_architecture.py`` checks it):

    cli.py, train.py, commands/, options.py   parse flags, call the library, print
    cluster/      Ray: reaching it, the searcher, train_jobs, the race driver
    reporting/    report.html, progress lines, the export of a winner
    fidelity/     how well a proxy setting ranks ramps against a reference
    ranking/      leaderboard, seed-paired statistics, the race's rules and results
    oneshot/      a weight-sharing supernet: its training and the scores of its subnets
    study/        the Optuna study: storage, objective, samplers, trial bookkeeping, the plan
    training/     one training loop for the proxy and the full recipe, zero-cost scores
    data/         proxy data sets
    errors.py, attributes.py   the exceptions and the words a study is recorded with

It is the only package that imports optuna, ray, pandas and plotly; only ``cluster/`` (and
the commands that train, when they train) imports Ray.
"""
