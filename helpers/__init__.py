"""Your exercises, one file per notebook: saliency, gradcam, fooling, style.

Write code only between ``# TODO START <name>`` and ``# TODO END <name>``. The kit's own code lives in the
``convlens`` package beside this folder; you do not need to read or change it.
"""
