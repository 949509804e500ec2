"""The proxy-fidelity measurement: proxy settings under test against a reference setting on
the same ramps and seeds, ranked and compared (``tables``).

May import: ``ranking``, ``study``, ``training``, ``data``, ``errors``, ``attributes``.
Never Ray.
"""
