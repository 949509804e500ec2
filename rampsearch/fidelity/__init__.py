"""The proxy-fidelity measurement: proxy settings under test against a reference setting on
the same ramps and seeds, ranked and compared. ``settings`` parses and describes the settings
and says how far a ranking at them was measured to be trusted; ``ramps`` chooses the ramps
and the trainings still missing; ``statistics`` holds the rank and noise statistics as plain
functions of numbers; ``learning_curve`` extrapolates a proxy's loss curve; ``tables`` builds
the per-ramp and summary tables from a study's runs and prints them.

May import: ``ranking``, ``study``, ``training``, ``data``, ``errors``, ``attributes``.
Never Ray.
"""
