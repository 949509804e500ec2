"""Proxy data: every source yields one in-memory form, :class:`ProxyData`.

Sources: ``fashion-mnist`` (Debian's package, offline), ``synthetic`` (generated, for tests
and quick checks) and directories written by ``rampsearch data prepare`` from ImageNet or
any ImageFolder tree.
"""

from .dataset import ProxyData, balanced_indices, resize_images
from .prepare import PrepareReport, ShardResult, prepare_imagefolder
from .sources import SOURCES, describe_source, load_proxy_data

__all__ = ["SOURCES", "PrepareReport", "ProxyData", "ShardResult", "balanced_indices",
           "describe_source", "load_proxy_data", "prepare_imagefolder", "resize_images"]
