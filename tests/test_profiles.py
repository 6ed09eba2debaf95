"""Profiles and chapter parameters: defaults per profile, overrides, fail-fast validation, the
explicit chapter registry, the notebook's namespace and the bounded seed."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ensembles_lib import chapters, profiles
from ensembles_lib.chapters import resolve, resolve_notebook
from ensembles_lib.data import catalog
from ensembles_lib.profiles import CHAPTER_SEED_MAX, SEED_MAX, SEED_ROOM, Chapter, Config, Param

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def parse_overrides(chapter: str, pairs) -> dict:
    return chapters.chapter(chapter).parse(pairs)


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
    assert config["eps"] == config.eps and set(config) == {p.name for p in chapters.parameters("tour")}
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
    ({"eps_grid": [0.1, 2.0]}, r"parameter eps_grid must be a list of numbers in \[0.0, 1.0\]"),
    ({"eps_grid": []}, r"parameter eps_grid must be a list of numbers"),
    ({"eps_grid": 0.1}, r"parameter eps_grid must be a list of numbers"),
    ({"eps_grid": [0.1, float("nan")]}, r"parameter eps_grid must be a list of numbers"),
    ({"seed": -1}, r"parameter seed must be an int in \[0, 4294957295\], got -1"),
    ({"seed": 10**23}, r"parameter seed must be an int in \[0, 4294957295\], got 100000000000000000000000"),
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
    (("eps_grid", "0.1,x"), r"parameter eps_grid must be a list of numbers"),
    (("seed", "99999999999999999999999"), r"parameter seed must be an int in \[0, 4294957295\]"),
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
    with pytest.raises(ValueError, match="name must be a Python identifier, got 'n-1'"):
        Param("n-1", "int", 1, "count")  # the notebook's parameters cell assigns it
    with pytest.raises(ValueError, match="meaning must be one non-empty line without '='"):
        Param("n", "int", 1, "two\nlines")
    with pytest.raises(ValueError, match="meaning must be one non-empty line without '='"):
        Param("n", "int", 1, "steps (n = 7 in the paper)")  # papermill could not read its line
    with pytest.raises(ValueError, match="choices apply to kinds 'str' and 'strs' only"):
        Param("n", "int", 1, "count", choices=(1, 2))
    with pytest.raises(ValueError, match="minimum/maximum apply to numbers only"):
        Param("s", "str", "a", "a name", minimum=0)
    with pytest.raises(ValueError, match="distinct names"):
        Chapter("twice", [Param("n", "int", 1, "a"), Param("n", "int", 2, "b")])
    with pytest.raises(ValueError, match="distinct names other than 'profile'"):
        Chapter("clash", [Param("profile", "str", "x", "shadows the profile")])
    with pytest.raises(ValueError, match="chapter must be an identifier-like name"):
        Chapter("two words", [])
    with pytest.raises(ValueError, match="n: retrains must be True or False, got 'yes'"):
        Param("n", "int", 1, "count", retrains="yes")


def test_expected_minutes_are_checked_and_unmeasured_profiles_are_none():
    chapter = Chapter("timed", [], minutes={"smoke": 1, "cpu": 2.5})
    assert dict(chapter.minutes) == {"smoke": 1.0, "cpu": 2.5, "gpu": None, "paper": None}
    assert chapter.expected_minutes("cpu") == 2.5 and chapter.expected_minutes("paper") is None
    assert Chapter("untimed", []).expected_minutes("smoke") is None
    with pytest.raises(ValueError, match="profile must be one of 'smoke', 'cpu', 'gpu', 'paper', got 'auto'"):
        chapter.expected_minutes("auto")  # a concrete profile: auto's time depends on the machine
    with pytest.raises(ValueError, match=r"timed: minutes\['cpu'\] must be a positive number or None, got 0"):
        Chapter("timed", [], minutes={"cpu": 0})
    with pytest.raises(ValueError, match="timed: minutes' profile must be one of .*got 'laptop'"):
        Chapter("timed", [], minutes={"laptop": 3})
    with pytest.raises(ValueError, match="timed: minutes must be a dict"):
        Chapter("timed", [], minutes=5)


@pytest.mark.parametrize("chapter", chapters.names())
def test_every_chapter_declares_its_measured_cpu_time_and_what_retrains(chapter):
    module = getattr(chapters, chapter)
    minutes = profiles.check_minutes(module.MINUTES, chapter)
    assert minutes["smoke"] is not None and minutes["cpu"] is not None  # both measured on two cores
    declared = {p.name: p.retrains for p in chapters.parameters(chapter)}
    # what enters a trained model's spec retrains; what only evaluates the trained models does not
    assert declared["dataset"] and declared["epochs"] and declared["seed"] and declared["lr"]
    assert not declared["n_eval"]


def test_which_tour_parameters_retrain():
    retrain = {p.name for p in chapters.parameters("tour") if p.retrains}
    assert retrain == {"dataset", "architecture", "width", "train_size", "epochs", "batch_size", "lr", "augment", "seed"}


def test_single_default_fills_every_profile():
    param = Param("seed", "int", 7, "a seed", minimum=0)
    assert dict(param.defaults) == dict.fromkeys(profiles.PROFILES, 7)
    assert param.allowed() == "an int, at least 0"
    assert Param("n", "float", 1, "a cap", maximum=2).allowed() == "a number, at most 2"


def test_every_notebook_has_a_declaration_and_every_declaration_a_notebook():
    notebooks = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert notebooks and notebooks == chapters.names()


def test_every_chapter_module_is_registered_explicitly():
    modules = sorted(m.name for m in pkgutil.iter_modules(chapters.__path__) if not m.name.startswith("_"))
    assert modules == chapters.names()
    assert all(chapters.chapter(name).params is getattr(chapters, name).PARAMETERS for name in modules)
    with pytest.raises(ValueError, match=r"chapter must be one of 'counter_linked', 'dverge', 'sq_ensembles', 'strength_in_numbers', 'tour', 'trend', got 'tuor'"):
        chapters.chapter("tuor")


def test_config_repr_names_chapter_and_profile():
    text = repr(resolve("tour", "smoke", eps=0.3))
    assert text.startswith("Config('tour', profile='smoke'") and "eps=0.3" in text
    assert isinstance(resolve("tour", "smoke"), Config)


# --------------------------------------------------------------------------- seeds


def test_seed_max_is_what_numpy_and_torch_accept():
    np.random.seed(SEED_MAX)  # numpy's legacy seeding is the narrower of the two: 32 bits
    np.random.default_rng(SEED_MAX)
    torch.manual_seed(SEED_MAX)
    torch.Generator().manual_seed(SEED_MAX)
    with pytest.raises(ValueError):
        np.random.seed(SEED_MAX + 1)


@pytest.mark.parametrize("chapter", chapters.names())
def test_every_chapter_seed_leaves_room_for_its_derived_seeds(chapter):
    seed = chapters.chapter(chapter).param("seed")
    assert (seed.kind, seed.minimum, seed.maximum) == ("int", 0, CHAPTER_SEED_MAX)
    assert CHAPTER_SEED_MAX + SEED_ROOM == SEED_MAX
    assert resolve(chapter, "smoke", seed=CHAPTER_SEED_MAX).seed == CHAPTER_SEED_MAX
    with pytest.raises(ValueError, match=rf"parameter seed must be an int in \[0, {CHAPTER_SEED_MAX}\]"):
        resolve(chapter, "smoke", seed=CHAPTER_SEED_MAX + 1)
    # DVERGE's largest derived seed: its third surrogate's eighth member
    np.random.seed(CHAPTER_SEED_MAX + 1000 + 100 * 2 + 7)


# --------------------------------------------------------------------------- the notebook's side


def test_resolve_notebook_picks_the_declared_names_and_profile_out_of_a_namespace():
    namespace = {name: None for name in chapters.chapter("tour").names}
    namespace.update(profile="smoke", eps=0.2, eps_grid=[0, 0.1], config="an older config", torch=torch)
    config = resolve_notebook("tour", namespace)
    assert (config.profile, config.eps, config.eps_grid, config.epochs) == ("smoke", 0.2, (0.0, 0.1), 3)
    assert config.overridden == ("eps", "eps_grid")
    assert config == resolve("tour", "smoke", eps=0.2, eps_grid=(0.0, 0.1))


def test_resolve_notebook_names_what_the_parameters_cell_lacks_and_checks_values():
    namespace = {name: None for name in chapters.chapter("tour").names}
    with pytest.raises(ValueError, match="parameters cell does not assign profile"):
        resolve_notebook("tour", namespace)
    del namespace["seed"]
    with pytest.raises(ValueError, match=r"does not assign profile, seed; `ensembles params tour --write`"):
        resolve_notebook("tour", namespace)
    namespace.update(profile="smoke", seed=-2)
    with pytest.raises(ValueError, match=r"parameter seed must be an int in \[0, "):
        resolve_notebook("tour", namespace)


@pytest.mark.parametrize("chapter", chapters.names())
def test_parameters_cell_assigns_profile_then_each_declared_name_once(chapter):
    declared = chapters.chapter(chapter)
    tree = ast.parse(declared.parameters_cell())
    assigned = [(node.targets[0].id, ast.literal_eval(node.value)) for node in tree.body]
    assert assigned == [("profile", "auto")] + [(name, None) for name in declared.names]
    # each line's comment says what the parameter means and accepts (papermill --help-notebook shows it)
    lines = declared.parameters_cell().splitlines()
    for p in declared.params:
        (line,) = [ln for ln in lines if ln.startswith(f"{p.name} = None  # ")]
        assert line.endswith(f"{p.meaning}; {p.allowed()}")


def test_overrides_are_checked_before_the_profile_is_resolved(monkeypatch):
    # "auto" asks torch about CUDA; a bad value must fail before that question is asked
    monkeypatch.setattr(profiles, "resolve_profile", lambda p: pytest.fail("resolved the profile first"))
    with pytest.raises(ValueError, match="parameter epochs"):
        resolve("tour", "auto", epochs=-3)
    with pytest.raises(ValueError, match="profile must be one of"):
        resolve("tour", "fast", epochs=3)


def test_list_kinds_parse_check_and_name_the_parameter():
    bits = Param("bits", "ints", (1, 2), "bit widths", minimum=1, maximum=16)
    names = Param("archs", "strs", ("a",), "architectures", choices=("a", "b"))
    assert bits.parse("1, 4,8") == (1, 4, 8) and names.parse("b,a") == ("b", "a")
    assert names.check(["a"]) == ("a",)
    with pytest.raises(ValueError, match="parameter bits must be a list of ints in \\[1, 16\\]"):
        bits.parse("1,32")
    with pytest.raises(ValueError, match="parameter bits"):
        bits.check([1.5])
    with pytest.raises(ValueError, match="parameter archs must be a list, each one of 'a', 'b'"):
        names.parse("a,c")
    with pytest.raises(ValueError, match="parameter archs"):
        names.check("a")  # a bare string is not a list
