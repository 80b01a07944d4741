"""Experiments registry and the `frugalnn report` runner."""
from frugalnn.report.registry import (MEASURED, NOT_REPRODUCED, PARTLY, REPRODUCED, Context, Figure, Result, Row,
                                      Table, experiment)

__all__ = ["MEASURED", "NOT_REPRODUCED", "PARTLY", "REPRODUCED", "Context", "Figure", "Result", "Row", "Table",
           "experiment"]
