"""The experiment registry, verdict rules and the `frugalnn report` runner."""
from frugalnn.report.registry import Context, Experiment, ExperimentResult, Figure, Row, Table, experiment
from frugalnn.report.verdicts import DERIVED, MEASURED, NOT_MEASURED, NOT_REPRODUCED, PARTLY, REPRODUCED

__all__ = ["DERIVED", "MEASURED", "NOT_MEASURED", "NOT_REPRODUCED", "PARTLY", "REPRODUCED", "Context", "Experiment",
           "ExperimentResult", "Figure", "Row", "Table", "experiment"]
