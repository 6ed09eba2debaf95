"""Profiles and chapter parameters: defaults per profile, overrides, and fail-fast validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ensembles_lib import profiles
from ensembles_lib.data import catalog
from ensembles_lib.profiles import Config, Param, parse_overrides, resolve

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_profile_defaults_pick_the_profile_dataset():
    assert resolve("tour", "smoke").dataset == "digits"
    assert resolve("tour", "cpu").dataset == "fashion_mnist"
    assert resolve("tour", "gpu").dataset == "cifar10"
    paper = resolve("tour", "paper")
    assert paper.dataset == "cifar10" and paper.epochs > resolve("tour", "gpu").epochs


def test_auto_is_gpu_only_with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve("tour", "auto").profile == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    config = resolve("tour")
    assert config.profile == "gpu" and config.dataset == "cifar10"


def test_overrides_apply_and_none_means_profile_default():
    config = resolve("tour", "smoke", eps=0.2, epochs=None, eps_grid=[0, 0.1], combine="logit")
    assert (config.eps, config.epochs, config.eps_grid, config.combine) == (0.2, 3, (0.0, 0.1), "logit")
    assert isinstance(config.eps_grid, tuple)
    assert config.overridden == ("combine", "eps", "eps_grid")
    # an override equal to the default is not reported as a change
    assert resolve("tour", "smoke", epochs=3).overridden == ()


def test_ints_are_accepted_for_floats():
    config = resolve("tour", "smoke", eps=0, lr=1)
    assert config.eps == 0.0 and isinstance(config.lr, float)


def test_config_is_frozen_and_reads_as_mapping():
    config = resolve("tour", "smoke")
    with pytest.raises(AttributeError, match="frozen"):
        config.eps = 0.3
    with pytest.raises(TypeError):
        config["eps"] = 0.3
    with pytest.raises(AttributeError, match="no parameter 'epsilon'"):
        config.epsilon
    assert config["eps"] == config.eps and set(config) == {p.name for p in profiles.parameters("tour")}
    assert config.as_dict()["eps_grid"] == list(config.eps_grid)
    assert config.chapter == "tour" and config.profile == "smoke"


@pytest.mark.parametrize("overrides, message", [
    ({"epsilon": 0.1}, r"no parameter 'epsilon' \(did you mean eps\?\).*eps_grid"),
    ({"eps": 1.5}, r"parameter eps must be a number in \[0.0, 1.0\], got 1.5"),
    ({"eps": "0.1"}, r"parameter eps must be a number"),
    ({"epochs": 2.5}, r"parameter epochs must be an int in \[1, 1000\], got 2.5"),
    ({"epochs": True}, r"parameter epochs must be an int"),
    ({"epochs": 0}, r"parameter epochs must be an int in \[1, 1000\], got 0"),
    ({"combine": "max"}, r"parameter combine must be one of 'prob', 'logit', 'vote', got 'max'"),
    ({"dataset": "imagenet"}, r"parameter dataset must be one of .*fashion_mnist"),
    ({"augment": 1}, r"parameter augment must be True or False, got 1"),
    ({"eps_grid": [0.1, 2.0]}, r"parameter eps_grid must be numbers.*\[0.0, 1.0\]"),
    ({"eps_grid": []}, r"parameter eps_grid must be numbers"),
    ({"eps_grid": 0.1}, r"parameter eps_grid must be numbers"),
])
def test_bad_values_name_the_parameter_and_what_it_accepts(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve("tour", "smoke", **overrides)


def test_bad_profile_and_chapter_list_the_choices():
    with pytest.raises(ValueError, match=r"profile must be one of 'auto', 'smoke', 'cpu', 'gpu', 'paper'"):
        resolve("tour", "fast")
    with pytest.raises(ValueError, match=r"chapter must be one of .*tour.*, got 'tuor'"):
        resolve("tuor", "smoke")


def test_validation_happens_before_any_data_is_loaded(monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("resolve must not load data")

    monkeypatch.setattr(catalog, "get", no_data)
    with pytest.raises(ValueError, match="parameter n_eval"):
        resolve("tour", "cpu", n_eval=5)


def test_parse_converts_command_line_strings():
    values = parse_overrides("tour", [("eps", "0.05"), ("epochs", "4"), ("augment", "yes"),
                                      ("eps_grid", "0, 0.1,0.2"), ("combine", "vote")])
    assert values == {"eps": 0.05, "epochs": 4, "augment": True, "eps_grid": (0.0, 0.1, 0.2), "combine": "vote"}
    assert parse_overrides("tour", [("augment", "off")]) == {"augment": False}
    assert parse_overrides("tour", [("eps_grid", "[0.1,0.2]")]) == {"eps_grid": (0.1, 0.2)}


@pytest.mark.parametrize("pair, message", [
    (("epochs", "3.5"), r"parameter epochs must be an int in \[1, 1000\], got '3.5'"),
    (("eps", "lots"), r"parameter eps must be a number in \[0.0, 1.0\], got 'lots'"),
    (("augment", "maybe"), r"parameter augment must be True or False, got 'maybe'"),
    (("eps_grid", "0.1,x"), r"parameter eps_grid must be numbers"),
    (("widht", "8"), r"no parameter 'widht' \(did you mean width\?\)"),
])
def test_parse_rejects_bad_strings(pair, message):
    with pytest.raises(ValueError, match=message):
        parse_overrides("tour", [pair])


def test_a_declaration_is_checked_when_made():
    with pytest.raises(ValueError, match="default must give a value for each of smoke, cpu, gpu, paper"):
        Param("n", "int", {"smoke": 1, "cpu": 2}, "count")
    with pytest.raises(ValueError, match=r"parameter n must be an int in \[1, 9\], got 10"):
        Param("n", "int", 10, "count", minimum=1, maximum=9)
    with pytest.raises(ValueError, match="kind must be one of"):
        Param("n", "integer", 1, "count")
    with pytest.raises(ValueError, match="distinct names"):
        profiles.declare("twice", [Param("n", "int", 1, "a"), Param("n", "int", 2, "b")])
    with pytest.raises(ValueError, match="distinct names other than 'profile'"):
        profiles.declare("clash", [Param("profile", "str", "x", "shadows the profile")])


def test_single_default_fills_every_profile():
    param = Param("seed", "int", 7, "a seed", minimum=0)
    assert dict(param.defaults) == dict.fromkeys(profiles.PROFILES, 7)
    assert param.allowed() == "an int >= 0"


def test_every_notebook_has_a_declaration_and_every_declaration_a_notebook():
    notebooks = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert notebooks and notebooks == profiles.chapters()


def test_config_repr_names_chapter_and_profile():
    text = repr(resolve("tour", "smoke", eps=0.3))
    assert text.startswith("Config('tour', profile='smoke'") and "eps=0.3" in text
    assert isinstance(resolve("tour", "smoke"), Config)
