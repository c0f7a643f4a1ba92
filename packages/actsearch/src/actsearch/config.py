"""The settings of a live search (stored in its study file, so a resumed run matches)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from actsearch.features import BASELINES, check_feature_set


class SearchConfig(BaseModel):
    """Everything that defines a live search (stored in the study file)."""

    task: str
    space: list[str]
    operators: list[str] | None = None
    budget: int = Field(50, ge=1)
    regressor: str = "knr"
    strategy: str = "surrogate"
    features: str = "union"
    seed: int = Field(0, ge=0)
    epochs: int | None = Field(None, ge=1)
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="fields of the task's recipe to override (act "
        "bench's --set), e.g. {'precision': 'bfloat16'}"
    )
    fisher_batch: int = Field(32, ge=1)
    fisher_features: str = Field(
        "cdf", description="the Fisher features: the published binned CDF ('cdf') or each "
        "layer's quantile function ('quantiles'; see actfim.fisher_quantiles)"
    )
    data_root: str | None = None
    device: str | None = Field(
        None, description="cpu, cuda or cuda:N for every training and spectrum; None: CUDA "
        "on a worker that has it, else its CPU"
    )
    in_order: bool = Field(False, description="take results in submission order")
    normalize: bool = Field(False, description="search normalised activation functions")
    baselines: tuple[str, ...] = Field(
        BASELINES, description="the functions trained first (the published 8 by default)"
    )

    # Checked here, once, when the search is defined: the rest of a search trusts them. An
    # unknown name raises act's own error (naming the close names), not a validation one.
    @field_validator("regressor")
    @classmethod
    def _known_regressor(cls, name: str) -> str:
        from actsearch.regressors import get_regressor

        get_regressor(name)
        return name

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, name: str) -> str:
        from actsearch.strategies import get_strategy

        get_strategy(name)
        return name

    @field_validator("device")
    @classmethod
    def _device_name(cls, name: str | None) -> str | None:
        from actcore.device import parse_device

        return name if name is None else str(parse_device(name))

    @field_validator("features")
    @classmethod
    def _known_features(cls, name: str) -> str:
        return check_feature_set(name)

    @field_validator("fisher_features")
    @classmethod
    def _known_fisher_features(cls, name: str) -> str:
        from actfim.features import check_fisher_features

        return check_fisher_features(name)

    @model_validator(mode="after")
    def _known_task_and_recipe(self) -> SearchConfig:
        """The task exists and takes the overrides (a bad field or value names itself)."""
        from actbench import get_task
        from actbench.train import recipe_for

        recipe_for(get_task(self.task), self.overrides)
        return self

    def settings(self) -> dict:
        """What must match for a study file to be resumed (not budget: it may grow; not
        where the work runs; the published baselines, no overrides and the CDF are left
        out, as studies from before those options hold them)."""
        settings = self.model_dump(exclude={"budget", "data_root", "device", "in_order"})
        if self.baselines == BASELINES:
            del settings["baselines"]
        else:
            settings["baselines"] = list(self.baselines)
        if not self.overrides:
            del settings["overrides"]
        if self.fisher_features == "cdf":
            del settings["fisher_features"]
        return settings
