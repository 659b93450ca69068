"""The MLflow experiments the product logs to, created where their artifacts belong."""

from __future__ import annotations

from pricing.config import TrainConfig


def experiment_id(tcfg: TrainConfig, name: str, folder: str | None = None) -> str:
    """The id of experiment ``name`` in ``tcfg``'s tracking store, created on first use.

    Its artifacts go to ``train.artifact_location`` (``<artifact_location>/<folder>`` when ``folder``
    is given). MLflow's own default for a database store is ``./mlruns`` under the directory the
    command was started from, so an experiment created without a location would scatter a shop's
    artifacts over whatever folders its jobs ran in. Without an ``artifact_location`` (a tracking
    server, Databricks) the server chooses.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tcfg.tracking_uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = tcfg.artifact_location
    if location and folder:
        location = f"{location.rstrip('/')}/{folder}"
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException:
        # Another process created it between the look-up and the create.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)
