"""The CM algorithm: strategies (prompts), the decision rules, retrieval, the engine, estimation
and evaluation. No Qt here; torch only inside retrieval's functions.

Import what you need from the submodules (`from cm_desktop.cm.engine import CMEngine, Trace`);
this package imports nothing heavy on its own.
"""

from cm_desktop.cm.marginalize import CMParams
from cm_desktop.cm.strategies import STRATEGIES

# the memory variants the engine offers (none: the model alone; evidence: the instance rule with
# absolute evidence weights, `cm.evidence`); settings, the CLI and the GUI import it
VARIANTS = ("none", "paper", "marginal", "instance", "evidence")
# what the app and `cm chat` use unless told otherwise: on every learning curve measured (benchmarks/
# RESULTS.md) the evidence rule is at or above the instance rule, and far above it on thin banks
DEFAULT_VARIANT = "evidence"

__all__ = ["CMParams", "DEFAULT_VARIANT", "STRATEGIES", "VARIANTS"]
