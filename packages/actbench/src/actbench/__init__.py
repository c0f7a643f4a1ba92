"""actbench: datasets, a model zoo, training recipes and tasks for activation research.

``actbench.train("mlp-digits", "relu", seed=0)`` trains one run and returns a
:class:`Result`; models, datasets and tasks come from the plugin registry.
"""

from actbench.activations import activation_factory
from actbench.datasets import DataSource, TensorData, data_root, image_folder
from actbench.models import Model, parameter_count
from actbench.recipes import Recipe
from actbench.tasks import Task, get_task
from actbench.train import Result, evaluate, train
from actcore.versions import package_version

__version__ = package_version("actbench")

__all__ = [
    "DataSource",
    "Model",
    "Recipe",
    "Result",
    "Task",
    "TensorData",
    "activation_factory",
    "data_root",
    "evaluate",
    "get_task",
    "image_folder",
    "parameter_count",
    "train",
]
