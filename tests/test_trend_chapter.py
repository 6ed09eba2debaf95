"""The TREND chapter's declarations: its architecture names are the registry's, families group
them as the paper's Fig. 1 does, and its claims name quantities the notebook measures."""

import json
from pathlib import Path

from ensembles_lib import models
from ensembles_lib.chapters import resolve, trend

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "trend.ipynb"


def test_architecture_choices_are_the_registry():
    assert set(trend.ARCHITECTURES) == set(models.names())


def test_families_follow_the_papers_grouping():
    assert [trend.family(a) for a in ("resnet18", "resnet20", "wide_resnet", "vgg11", "vgg19_bn", "small_cnn")] == \
        ["ResNet", "ResNet", "ResNet", "VGG", "VGG", "plain"]
    for profile in ("cpu", "gpu", "paper"):  # every profile but smoke has both families for the Fig. 1 claims
        assert {trend.family(a) for a in resolve("trend", profile).architectures} >= {"VGG", "ResNet"}


def test_every_claimed_quantity_is_measured_by_the_notebook():
    source = "".join("".join(cell["source"]) for cell in json.loads(NOTEBOOK.read_text())["cells"])
    for claim in trend.CLAIMS:
        for quantity in claim.test.quantities():
            # the notebook builds the per-bit names ("into Q4", "into FP, Q4's sources") in a loop
            name = quantity.replace("Q4", "Q{bits}").replace("Q8", "Q{bits}")
            assert f'"{quantity}"' in source or f'f"{name}"' in source, quantity
