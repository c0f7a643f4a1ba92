"""actbench: datasets, a model zoo, training recipes and tasks for activation research.

``actbench.train("mlp-digits", "relu", seed=0)`` trains one run and returns a
:class:`Result`; models, datasets and tasks come from the plugin registry.
"""

from actbench.activations import activation_factory
from actbench.datasets import DataSource, TensorData, data_root, image_folder
from actbench.models import Model, parameter_count
from actbench.optimizers import Optimizer
from actbench.recipes import Recipe
from actbench.results import TIMINGS, Epoch, Result
from actbench.stacked_training import train_many
from actbench.tables import Table, chance_accuracy, is_failed, load_table, read_table
from actbench.tasks import Task, get_task
from actbench.train import evaluate_model, train
from actcore.versions import package_version

__version__ = package_version("actbench")

__all__ = [
    "TIMINGS",
    "DataSource",
    "Epoch",
    "Model",
    "Optimizer",
    "Recipe",
    "Result",
    "Table",
    "Task",
    "TensorData",
    "activation_factory",
    "chance_accuracy",
    "data_root",
    "evaluate_model",
    "get_task",
    "image_folder",
    "is_failed",
    "load_table",
    "parameter_count",
    "read_table",
    "train",
    "train_many",
]
