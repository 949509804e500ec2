"""The proxy data is held once per machine: workers read the driver's arrays in place (a
read-only memory map, or Ray's shared object store), and training never writes them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from cli_runs import environment

from iformer.config import preset
from rampsearch.data import load_proxy_data
from rampsearch.training.proxy import DeviceImages, ProxySettings, train_proxy


def test_device_images_on_the_cpu_are_the_callers_memory(tmp_path) -> None:
    path = tmp_path / "images.npy"
    np.save(path, np.arange(4 * 8 * 8 * 3, dtype=np.uint8).reshape(4, 8, 8, 3))
    mapped = np.load(path, mmap_mode="r")  # read-only, as prepared data is loaded
    split = DeviceImages(mapped, np.arange(4), torch.device("cpu"))
    assert split.images.data_ptr() == mapped.ctypes.data
    other_dtype = DeviceImages(mapped.astype(np.int16), np.arange(4), torch.device("cpu"))
    assert other_dtype.images.dtype == torch.uint8  # anything else is converted, once


def test_training_leaves_read_only_images_untouched() -> None:
    settings = ProxySettings(train_samples=128, val_samples=64, batch_size=32, width=0.125,
                             epochs=1, warmup_epochs=0.0)
    data = load_proxy_data("synthetic", 64, 128, 64, seed=0)
    before = data.train_images.copy(), data.val_images.copy()
    data.train_images.setflags(write=False)
    data.val_images.setflags(write=False)
    result = train_proxy(preset("iformer_small"), data, settings, num_threads=1)
    assert result.status == "completed"
    assert np.array_equal(data.train_images, before[0])
    assert np.array_equal(data.val_images, before[1])


# Run in a fresh process that joins the session's cluster as a user's driver would.
WORKERS_SHARE = """
import json, numpy as np, ray, torch
ray.init(log_to_driver=False)
images = np.random.default_rng(0).integers(0, 255, (256, 32, 32, 3), np.uint8)
ref = ray.put(images)

@ray.remote(num_cpus=1)
def wrap(array):
    from rampsearch.training.proxy import DeviceImages
    split = DeviceImages(array, np.zeros(len(array), np.int64), torch.device("cpu"))
    return [array.flags.writeable, split.images.data_ptr() == array.ctypes.data,
            int(split.images.sum())]

print(json.dumps({"total": int(images.sum()), "workers": ray.get([wrap.remote(ref)] * 2)}))
"""


@pytest.mark.slow
def test_ray_workers_read_the_object_store_copy(ray_cluster: str) -> None:
    """Two tasks on the session's cluster get the same images: read-only views of one
    shared buffer, which DeviceImages wraps without a copy."""
    done = subprocess.run([sys.executable, "-c", WORKERS_SHARE], capture_output=True,
                          text=True, timeout=300, env=environment(ray_cluster))
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    for writeable, shared, total in found["workers"]:
        assert not writeable and shared and total == found["total"]
