"""The CM algorithm: strategies (prompts), the decision rules, retrieval, the engine, estimation
and evaluation. No Qt here; torch only inside retrieval's functions.

Import what you need from the submodules (`from cm_desktop.cm.engine import CMEngine, Trace`);
this package imports nothing heavy on its own.
"""

from cm_desktop.cm.marginalize import CMParams
from cm_desktop.cm.strategies import STRATEGIES

# the memory variants the engine offers (none: the model alone); settings and the GUI import it
VARIANTS = ("none", "paper", "marginal", "instance")

__all__ = ["CMParams", "STRATEGIES", "VARIANTS"]
