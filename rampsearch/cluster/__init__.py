"""Training on Ray: reaching or starting Ray and checking a trial fits a node
(``connection``), the searcher that asks the study for ramps and tells it how each Ray trial
ended (``searcher``), the one way to train jobs with progress lines (``jobs``) and the race
on Ray (``race_driver``).

May import every library layer below the commands. The only package that imports Ray.
"""
