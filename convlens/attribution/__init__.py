"""Attribution methods the notebooks use next to the students' own, one module each: fast Captum-equivalent
occlusion (occlusion.py, with the EfficientNet-Lite0 speed-up in occlusion_lite0.py) and integrated
gradients (integrated_gradients.py), cost counting (cost.py), maps and their measures (maps.py),
deletion / insertion curves (evaluation.py) and the model-randomization test (randomization.py).

Images are float RGB in [0, 1], shape (N, 3, H, W); targets are (N,) int64 ImageNet indices.
"""
from convlens.attribution.cost import PassCounter
from convlens.attribution.evaluation import causal_curves, causal_scores
from convlens.attribution.integrated_gradients import fast_integrated_gradients, gauss_legendre
from convlens.attribution.maps import attribution_map, mass_in_columns, superpixels
from convlens.attribution.occlusion import occlusion_attribution
from convlens.attribution.randomization import CascadeResult, cascade_stages, cascading_randomization

__all__ = ["PassCounter", "causal_curves", "causal_scores", "gauss_legendre", "fast_integrated_gradients",
           "attribution_map", "mass_in_columns", "superpixels", "occlusion_attribution", "CascadeResult",
           "cascade_stages", "cascading_randomization"]
