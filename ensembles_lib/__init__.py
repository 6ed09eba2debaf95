"""ensembles_lib: the library under the robust-ensembles companion book.

Every chapter imports from here; see DESIGN.md for the layers and conventions (images as
float NCHW in [0, 1], normalisation inside models, attack budgets in pixel units).
"""

__version__ = "0.1.0"

from .ensembles import Ensemble

__all__ = ["Ensemble"]
