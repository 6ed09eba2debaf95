"""The spec layer: one validation at the edge, errors naming the field, one canonical form for hashing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ensembles_lib import specs
from ensembles_lib.data import ImageDataset
from ensembles_lib.profiles import SEED_MAX

MODEL = {"name": "small_cnn", "num_classes": 10, "in_channels": 1, "options": {"width": 8}}
RUN = {"model": MODEL, "data": {"name": "digits", "split": "train", "batch_size": 64},
       "optim": {"lr": 0.05}, "epochs": 2, "seed": 0}


def run_with(**changes) -> dict:
    return {**RUN, **changes}


def test_canonical_form_fills_every_default_and_ignores_spelled_out_ones():
    canonical = specs.training_run(RUN).canonical()
    assert canonical["strategy"] == {"name": "standard"}
    assert canonical["optim"] == {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
                                  "nesterov": False, "schedule": "multistep", "milestones": [], "gamma": 0.1}
    assert canonical["model"]["options"]["width"] == 8 and canonical["model"]["options"]["mean"] == 0.5
    assert canonical["data"] == {"name": "digits", "split": "train", "batch_size": 64, "augment": False,
                                 "val_size": 0.1, "split_seed": 0}
    explicit = run_with(optim={"lr": 0.05, "momentum": 0.9}, strategy={"name": "standard"},
                        model={**MODEL, "options": {"width": 8, "std": 0.5}})
    assert specs.training_run(explicit).canonical() == canonical
    assert json.loads(json.dumps(canonical)) == canonical  # JSON types only
    assert "eval" not in canonical and "init" not in canonical


@pytest.mark.parametrize("changes, message", [
    ({"seed": SEED_MAX + 1}, r"^spec.seed must be an int in \[0, 4294967295\], got 4294967296$"),
    ({"seed": -1}, r"^spec.seed must be an int in \[0, 4294967295\], got -1$"),
    ({"seed": True}, r"^spec.seed must be an int in \[0, 4294967295\], got True$"),
    ({"epochs": "3"}, r"^spec.epochs must be an int >= 1, got '3'$"),
    ({"optim": {"lr": 0.1, "optimizer": "adamw"}}, r"^spec.optim.optimizer must be one of 'sgd', 'adam', got 'adamw'$"),
    ({"optim": {"lr": float("nan")}}, r"^spec.optim.lr must be a number > 0, got nan$"),
    ({"optim": {"lr": 0.1, "milestones": [0]}}, r"^spec.optim.milestones\[0\] must be an int >= 1, got 0$"),
    ({"data": {"name": "cifar11", "split": "train", "batch_size": 8}}, r"^spec.data.name: unknown dataset name 'cifar11'"),
    ({"data": {"name": "digits", "split": "dev", "batch_size": 8}},
     r"^spec.data.split must be one of 'train', 'test', 'fit', 'val', got 'dev'$"),
    ({"model": {**MODEL, "nam": 1}},
     r"^spec.model.nam is not a parameter of Architecture \(it accepts name, num_classes, in_channels, options\)$"),
    ({"model": {**MODEL, "name": "resnet99"}}, r"^spec.model: name must be one of .*small_cnn.*got 'resnet99'$"),
    ({"model": {**MODEL, "options": {"widht": 8}}}, r"^spec.model: options 'widht' unknown to small_cnn; it accepts .*width"),
    ({"model": {"ensemble": [MODEL], "combine": "median"}},
     r"^spec.model.combine must be one of 'prob', 'logit', 'vote', 'random', 'dispatch', got 'median'$"),
    ({"model": {"ensemble": [{**MODEL, "widht": 8}], "combine": "prob"}},
     r"^spec.model.ensemble\[0\].widht is not a parameter of Architecture"),
    ({"strategy": {"name": "advers"}}, r"^spec.strategy: .*'advers'.*'standard', 'adversarial', 'dverge', 'adp', 'gal'"),
    ({"strategy": {"name": "dverge", "eps": 1.5}}, r"^spec.strategy.eps must be a number in \[0, 1\] \(pixel units"),
    ({"strategy": {"name": "adversarial"}},
     r"^spec.strategy.attack is required: a spec whose name is one of 'fgsm', 'ifgsm', 'pgd'"),
    ({"strategy": {"name": "adversarial", "attack": {"name": "pgd", "eps": 0.1, "stpes": 3}}},
     r"^spec.strategy.attack.stpes is not a parameter of pgd \(it accepts eps, steps, "),
    ({"eval": {"n": 5, "metrics": []}}, r"^spec.eval.metrics: List should have at least 1 item"),
    ({"eval": {"n": 5, "metrics": [{"name": "loss"}]}}, r"^spec.eval.metrics\[0\]: .*'loss'.*'clean', 'robust'"),
])
def test_errors_name_the_field_and_what_it_accepts(changes, message):
    with pytest.raises(specs.SpecError, match=message):
        specs.training_run(run_with(**changes))


def test_spec_error_is_a_value_error_and_is_one_line():
    with pytest.raises(ValueError) as info:
        specs.training_run(run_with(seed=-1, epochs=0))
    text = str(info.value)
    assert "\n" not in text and "seed" in text and "epochs" in text  # every problem, on one line
    assert "errors.pydantic.dev" not in text


def test_init_must_match_the_model_it_initialises():
    ensemble = {"ensemble": [MODEL, MODEL], "combine": "prob"}
    ok = specs.training_run(run_with(model=ensemble, init=[RUN, RUN]))
    assert [i.seed for i in ok.inits()] == [0, 0]
    with pytest.raises(specs.SpecError, match="one per member"):
        specs.training_run(run_with(model=ensemble, init=[RUN]))
    with pytest.raises(specs.SpecError, match="does not match"):
        specs.training_run(run_with(init=run_with(model={**MODEL, "options": {"width": 4}})))
    # the activation holds no parameters: ReLU members may start leaky-ReLU ones (GAL at cpu)
    leaky = {**MODEL, "options": {**MODEL.get("options", {}), "activation": "leaky_relu", "negative_slope": 0.1}}
    run = specs.training_run(run_with(model=leaky, init=RUN))
    assert run.model.options["activation"] == "leaky_relu" and run.init.model.options.get("activation", "relu") == "relu"


def test_models_build_from_specs_and_describe_themselves():
    ensemble = specs.training_run(run_with(model={"ensemble": [MODEL, {**MODEL, "name": "mlp", "options": {}}],
                                                  "combine": "logit"}))
    model = ensemble.model.build()
    assert len(model.members) == 2 and model.combine == "logit"
    assert ensemble.model.describe() == "ensemble(2xsmall_cnn..., logit)"
    assert [leaf.name for leaf in ensemble.model.leaves()] == ["small_cnn", "mlp"]
    assert specs.training_run(RUN).describe() == "small_cnn on digits, standard, 2 epochs, seed 0"


def test_check_fits_compares_classes_and_channels_with_the_dataset():
    data = ImageDataset(np.zeros((4, 8, 8, 3), np.uint8), np.arange(4) % 2, ("a", "b"), "tiny", "train", "test")
    with pytest.raises(specs.SpecError, match=r"num_classes=10, in_channels=1, but tiny has 2 classes and 3 channel"):
        specs.check_fits(specs.training_run(RUN).model, data)
    fits = specs.training_run(run_with(model={**MODEL, "num_classes": 2, "in_channels": 3})).model
    specs.check_fits(fits, data)


def test_strategy_specs_fill_their_defaults():
    dverge = specs.strategy_spec({"name": "dverge", "eps": 0.07})
    assert dverge.step == pytest.approx(0.007) and dverge.steps == 10 and dverge.layers is None
    assert specs.strategy_spec({"name": "adp"}).canonical() == {"name": "adp", "alpha": 2.0, "beta": 0.5}
    with pytest.raises(specs.SpecError, match=r"^strategy.coefficient must be a number >= 0, got inf$"):
        specs.strategy_spec({"name": "gal", "coefficient": float("inf")})


def test_adversarial_examples_spec():
    spec = specs.adversarial_examples({"sources": [RUN], "attack": {"name": "fgsm", "eps": 0.1},
                                       "data": {"name": "digits", "split": "test", "n": 10}})
    assert spec.combine == "logit" and spec.batch_size == 500
    assert spec.describe() == "fgsm examples of 10 digits test images from small_cnn"
    with pytest.raises(specs.SpecError, match=r"^adversarial.data.n must be an int >= 1, got 0$"):
        specs.adversarial_examples({"sources": [RUN], "attack": {"name": "fgsm", "eps": 0.1},
                                    "data": {"name": "digits", "split": "test", "n": 0}})
    with pytest.raises(specs.SpecError, match=r"^adversarial.sources: List should have at least 1 item"):
        specs.adversarial_examples({"sources": [], "attack": {"name": "fgsm", "eps": 0.1},
                                    "data": {"name": "digits", "split": "test", "n": 1}})
