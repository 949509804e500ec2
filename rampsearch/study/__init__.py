"""The Optuna study of a search: where it is stored and what it measures (``storage``), the
objective it ranks by, its samplers, the bookkeeping of its trials (``trials``), the plan a
search follows (``plan``) and a study reopened by a later command (``stored``).

May import: ``training``, ``data``, ``errors``, ``attributes``, ``search_spaces``,
``iformer``, optuna. Never Ray, never a command.
"""
