"""Proxy data: every source yields one in-memory form, :class:`ProxyData`.

Sources: ``imagenette`` (ten ImageNet classes, prepared once per machine by ``rampsearch
data get imagenette``), ``fashion-mnist`` (Debian's package, offline), ``synthetic``
(generated, for tests and quick checks) and directories written by ``rampsearch data
prepare`` from ImageNet or any ImageFolder tree; ``auto`` is Imagenette where it is prepared,
else Fashion-MNIST.
"""

from .dataset import ProxyData, balanced_indices, resize_images
from .prepare import PrepareReport, ShardResult, prepare_imagefolder
from .sources import AUTO, SOURCES, choose_source, describe_source, load_proxy_data

__all__ = ["AUTO", "SOURCES", "PrepareReport", "ProxyData", "ShardResult", "balanced_indices",
           "choose_source", "describe_source", "load_proxy_data", "prepare_imagefolder",
           "resize_images"]
