"""convlens helpers: the shared model/image/plotting code and one module per notebook topic.

Topic modules (saliency, gradcam, fooling, style_transfer) hold the functions students complete between
``TODO START`` and ``TODO END`` markers.
"""
