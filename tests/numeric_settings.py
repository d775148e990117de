"""Other numerics, as another machine has them, chosen by environment variables that tests/conftest.py and
bench/bench_numerics.py apply once at start: CONVLENS_ONEDNN=0 turns oneDNN off; CONVLENS_CHANNELS_LAST=1 stores
the checks' pretrained network channels-last (NHWC), so its convolutions run other kernels, as a GPU or a tuned
deployment would. ATEN_CPU_CAPABILITY (older CPU kernels) and OMP_NUM_THREADS are read by torch itself."""
import functools
import os

import torch


def apply(environ=os.environ) -> None:
    if environ.get("CONVLENS_ONEDNN") == "0":
        torch.backends.mkldnn.enabled = False
    if environ.get("CONVLENS_CHANNELS_LAST") == "1":
        from checks.child import compute

        load = compute.pretrained.__wrapped__
        compute.pretrained = functools.lru_cache(maxsize=None)(
            lambda device: load(device).to(memory_format=torch.channels_last))
