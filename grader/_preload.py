"""Imported once by the grader's forkserver, so that every worker forked from it starts with these heavy
libraries already loaded. Nothing here touches the kit's own modules (checks/, helpers/)."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import captum.attr  # noqa: E402,F401
import matplotlib.pyplot  # noqa: E402,F401
import numpy  # noqa: E402,F401
import scipy.ndimage  # noqa: E402,F401
import torch  # noqa: E402,F401
import torchvision  # noqa: E402,F401
