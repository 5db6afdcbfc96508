"""`edgept optimize`: from a model, labelled data and a target to the fastest bundle within an
accuracy budget, with the Pareto report of everything it tried.

    from edgept.optimize import OptimizeConfig, optimize
    result = optimize("minilm", "rt-polarity", "out/opt", OptimizeConfig(target="cpu", max_drop=1.0))
    result.best          # the chosen Bundle (out/opt/best.edgept)
    result.report        # out/opt/report.json: every candidate's size, dev/test accuracy, latency
"""

from __future__ import annotations

from edgept.optimize.config import SCHEDULES, OptimizeConfig, parse_duration
from edgept.optimize.optimize import OptimizeResult, optimize

__all__ = ["SCHEDULES", "OptimizeConfig", "OptimizeResult", "optimize", "parse_duration"]
