"""ensembles_lib: the library under the robust-ensembles companion book.

Every chapter imports from here; see DESIGN.md for the layers and conventions (images as
float NCHW in [0, 1], normalisation inside models, attack budgets in pixel units).
"""

__version__ = "0.1.0"

__all__ = ["Ensemble"]


def __getattr__(name: str):
    # `Ensemble` loads on first use (PEP 562): importing the package must not import torch, so
    # that `ensembles` rejects a bad argument before paying seconds for it
    if name == "Ensemble":
        from .ensembles import Ensemble

        return Ensemble
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
