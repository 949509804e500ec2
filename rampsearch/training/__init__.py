"""Training: the one loop (``engine``) that the proxy (``proxy``) and the full ImageNet recipe
(``recipe``, ``trainer``) run, zero-cost scores, and the settings files' value checks
(``fields``).

May import: ``data``, ``errors``, ``attributes``, ``iformer``, torch and timm. Never optuna,
Ray, argparse or a command.
"""
