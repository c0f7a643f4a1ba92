"""acthull: learnable convex- and affine-hull activations for any PyTorch model.

g(x) = Σ c_i f_i(x) over base functions f_i from actcore's registry, with the
coefficients kept exactly on the convex hull (c ≥ 0, Σ c = 1) or the affine hull
(Σ c = 1) by reparameterisation.
"""

from actcore.versions import package_version
from acthull.checkpoint import load_coefficients, load_layers, save_checkpoint
from acthull.freeze import FrozenHull, freeze
from acthull.hull import AffineHull, ConvexHull, Hull, HullSpec
from acthull.inspection import (
    activation_layers,
    coefficients,
    function_values,
    hulls,
    is_monotonic,
    plot_functions,
)
from acthull.replace import (
    DEFAULT_KINDS,
    HIDDEN_KINDS,
    UnreplacedActivationWarning,
    replace_activations,
    replace_call_sites,
)
from acthull.trajectory import CoefficientRecorder, Trajectories

__version__ = package_version("acthull")

__all__ = [
    "DEFAULT_KINDS",
    "HIDDEN_KINDS",
    "AffineHull",
    "CoefficientRecorder",
    "ConvexHull",
    "FrozenHull",
    "Hull",
    "HullSpec",
    "Trajectories",
    "UnreplacedActivationWarning",
    "activation_layers",
    "coefficients",
    "freeze",
    "function_values",
    "hulls",
    "is_monotonic",
    "load_coefficients",
    "load_layers",
    "plot_functions",
    "replace_activations",
    "replace_call_sites",
    "save_checkpoint",
]
