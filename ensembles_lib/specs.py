"""Typed specs: what a trained model or a stored set of adversarial examples is made of (DESIGN.md, "specs").

A spec names each variant (an architecture, an ensemble, a training strategy, an attack, a
per-epoch metric) and its parameters. Chapters write specs as plain dicts; `training_run(value)`
and `adversarial_examples(value)` validate them once, at the edge, into frozen pydantic models
whose `canonical()` form (every default filled in, JSON) is what the artifact store hashes. An
unknown field, a misspelt name or an out-of-range value is a `SpecError` (a ValueError) that names
the field and what it accepts, raised before any data is read or anything is built:

    {"model": {"name": "small_cnn", "num_classes": 10, "in_channels": 1, "options": {}},
       # or {"ensemble": [model specs ...], "combine": "prob", "options": {}}
     "data": {"name": "digits", "split": "train", "batch_size": 128, "augment": False},
     "strategy": {"name": "adversarial", "rho": 1.0, "attack": {"name": "ifgsm", "eps": 0.3, "steps": 3}},
     "optim": {"lr": 0.05, "optimizer": "sgd", "schedule": "cosine"},
     "epochs": 5, "seed": 0,
     "eval": {"split": "test", "n": 500, "metrics": [{"name": "clean"}, {"name": "robust", "attack": {...}}]},
     "init": <a training-run spec> or [<one per ensemble member>]}

Attack specs live with the attacks (`attacks.specs`); the strategy objects that the strategy
specs describe live in `training`. Used by the cache and, through it, by every chapter that trains.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args

from pydantic import (AfterValidator, BaseModel, ConfigDict, Discriminator, Field, JsonValue,
                      SerializerFunctionWrapHandler, Tag, TypeAdapter, ValidationError, model_serializer,
                      model_validator)

from .attacks.specs import AttackSpec
from .data.catalog import SPLITS, check_name
from .data.dataset import DataError, ImageDataset
from .ensembles import COMBINES, Ensemble
from .models import registry
from .fields import STRICT, ArgumentError, Budget, Count, NonNegative, Positive, Seed, StepSize, explain

# the hold-out of the fit/val splits: a count of images, or a fraction of the training split
HoldOut = Union[Annotated[int, Field(ge=0)], Annotated[float, Field(gt=0, lt=1)]]
Optimizer = Literal["sgd", "adam"]
Schedule = Literal["multistep", "cosine", "onecycle", "constant"]
Split = Literal[SPLITS]  # type: ignore[valid-type]
Combine = Literal[COMBINES]  # type: ignore[valid-type]


def _dataset_name(name: str) -> str:
    try:
        return check_name(name)
    except DataError as err:
        raise ValueError(str(err)) from None


DatasetName = Annotated[str, AfterValidator(_dataset_name)]  # a catalogue name or imagefolder:<path>


class SpecError(ArgumentError):
    """A spec that does not validate; the message names each bad field and what it accepts."""


class Spec(BaseModel):
    """A frozen spec that refuses unknown fields; `canonical()` is its hashed form. Strict: a bool
    is not an int and a string is not a number (True epochs or "0.1" lr are refused, not coerced)."""

    model_config = ConfigDict(extra="forbid", frozen=True, **STRICT)

    def canonical(self) -> dict:
        """Every field, defaults filled in, as JSON types: two specs that train the same thing agree."""
        return self.model_dump(mode="json", exclude_none=True)


def validate(kind: type[Spec], value: Any, where: str = "spec") -> Spec:
    """`value` (a dict, or already a `kind`) validated as `kind`; SpecError naming every bad field."""
    if isinstance(value, kind):
        return value
    try:
        return kind.model_validate(value)
    except ValidationError as err:
        raise SpecError(explain(err, kind, value, where=where)) from None


# --------------------------------------------------------------------------------- data and models


class DataSpec(Spec):
    """The training images: a catalogue name, a split and how they are batched."""

    name: DatasetName
    split: Split
    batch_size: Count
    augment: bool = False
    val_size: HoldOut = 0.1
    split_seed: Seed = 0


class ArchitectureSpec(Spec):
    """One registered architecture (`models.names()`), its class and channel counts, its options
    (`models.options(name)`: unknown ones are refused, the rest filled with their defaults)."""

    name: str
    num_classes: int = Field(ge=2)
    in_channels: int = Field(ge=1)
    options: dict[str, JsonValue] = {}

    @model_validator(mode="before")
    @classmethod
    def _fill_options(cls, value: Any) -> Any:
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            return value
        given = value.get("options") or {}
        filled = registry.with_defaults(value["name"], given if isinstance(given, dict) else {})
        return {**value, "options": filled} if isinstance(given, dict) else value

    def leaves(self) -> list["ArchitectureSpec"]:
        return [self]

    def build(self):
        """The untrained nn.Module (fresh weights from the global RNG)."""
        return registry.build(self.name, num_classes=self.num_classes, in_channels=self.in_channels, **self.options)

    def describe(self) -> str:
        return self.name


class EnsembleSpec(Spec):
    """An `Ensemble` of member specs (architectures or ensembles) under a combine rule."""

    ensemble: list["ModelSpec"] = Field(min_length=1)
    combine: Combine
    options: dict[str, JsonValue] = {}

    def leaves(self) -> list[ArchitectureSpec]:
        return [leaf for member in self.ensemble for leaf in member.leaves()]

    def build(self):
        return Ensemble([member.build() for member in self.ensemble], combine=self.combine, **self.options)

    def describe(self) -> str:
        names = [member.describe() for member in self.ensemble]
        return f"ensemble({len(names)}x{names[0]}{'' if len(set(names)) == 1 else '...'}, {self.combine})"


def _model_kind(value: Any) -> str:
    """The variant of a model spec, by its keys; capitalised so an error's location ("(Ensemble)")
    does not read like the "ensemble" key."""
    return "Ensemble" if (isinstance(value, dict) and "ensemble" in value) or isinstance(value, EnsembleSpec) \
        else "Architecture"


ModelSpec = Annotated[Union[Annotated[ArchitectureSpec, Tag("Architecture")], Annotated[EnsembleSpec, Tag("Ensemble")]],
                      Discriminator(_model_kind)]
EnsembleSpec.model_rebuild()


def check_fits(model: ArchitectureSpec | EnsembleSpec, dataset: ImageDataset, where: str = "spec['model']") -> None:
    """SpecError unless every architecture in `model` has the dataset's class and channel counts."""
    classes, channels = dataset.num_classes, dataset.shape[-1]
    for leaf in model.leaves():
        if (leaf.num_classes, leaf.in_channels) != (classes, channels):
            raise SpecError(f"{where}: {leaf.name} is specified with num_classes={leaf.num_classes}, "
                            f"in_channels={leaf.in_channels}, but {dataset.name} has {classes} classes and "
                            f"{channels} channel(s)")


# --------------------------------------------------------------------------------- strategies


class StandardSpec(Spec):
    """Cross-entropy on the clean batch (training.Standard)."""

    name: Literal["standard"] = "standard"


ADVERSARIAL_OBJECTIVES = ("ensemble", "members")


def check_adversarial_options(rho: float, clean: bool) -> None:
    """ValueError for options of adversarial training that contradict each other: rho weights
    the clean term, so with clean=False it must stay at its default 1.0."""
    if not clean and rho != 1.0:
        raise ValueError(f"rho weights the clean term against the adversarial one, and clean=False drops the clean "
                         f"term: leave rho at its default 1.0 (or set clean=True), got rho={rho}")


class AdversarialSpec(Spec):
    """Clean and adversarial cross-entropy weighted by rho (training.Adversarial; SiN Eq. 3/4).
    clean=False trains on the adversarial batch alone; objective="members" sums each member's own
    cross-entropy instead of the ensemble's (DVERGE's AdvT baseline: clean=False, "members");
    separate_passes forwards the clean and adversarial batches apart (SiN Fig. 1)."""

    name: Literal["adversarial"]
    rho: NonNegative = 1.0
    attack: AttackSpec
    clean: bool = True
    objective: Literal[ADVERSARIAL_OBJECTIVES] = "ensemble"  # type: ignore[valid-type]
    separate_passes: bool = False  # clean and adversarial batches normalised apart (SiN Fig. 1)

    @model_validator(mode="after")
    def _options_agree(self) -> "AdversarialSpec":
        check_adversarial_options(self.rho, self.clean)
        return self

    @model_serializer(mode="wrap")
    def _without_later_defaults(self, handler: SerializerFunctionWrapHandler) -> dict:
        # clean and objective came after models were stored under specs without them: left out
        # at their defaults, every earlier spec keeps its canonical form, hence its cache key
        data = handler(self)
        for key, default in (("clean", True), ("objective", "ensemble"), ("separate_passes", False)):
            if data.get(key) == default:
                del data[key]
        return data


class DVERGESpec(Spec):
    """DVERGE's round-robin distillation objective (training.DVERGE; DVERGE Eq. 5, Algorithm 1).
    step defaults to eps / steps; layers None means every feature layer of a member."""

    name: Literal["dverge"] = "dverge"
    eps: Budget
    steps: Count = 10
    step: StepSize | None = None
    mu: NonNegative = 1.0
    layers: list[str] | None = Field(None, min_length=1)
    seed: Seed = 0
    adv_attack: AttackSpec | None = None
    rho: NonNegative = 1.0

    @model_validator(mode="after")
    def _default_step(self) -> "DVERGESpec":
        if self.step is None:
            object.__setattr__(self, "step", self.eps / self.steps)
        return self


class ADPSpec(Spec):
    """ADP's ensemble-entropy and log-det regulariser (training.ADP; Pang et al. 2019)."""

    name: Literal["adp"] = "adp"
    alpha: NonNegative = 2.0
    beta: NonNegative = 0.5


class GALSpec(Spec):
    """GAL's gradient-alignment penalty (training.GAL; Kariyappa & Qureshi 2019)."""

    name: Literal["gal"] = "gal"
    coefficient: NonNegative = 0.5


class CounterLinkedSpec(Spec):
    """A population of submodels, each on its own loss, with CLM's periodic similarity examination
    (training.CounterLinked; CLM Sec. 2, Algorithm 1, Eq. 4-5): every `period` steps each submodel's
    counter-linked first-layer weights within `delta` of a random other submodel's move by `alpha`.
    attack: each submodel trains on its own adversarial examples of it (CLM-Adv); None: clean."""

    name: Literal["counter_linked"] = "counter_linked"
    alpha: Positive
    delta: Positive
    period: Count = 10
    attack: AttackSpec | None = None
    seed: Seed = 0


class SQSpec(Spec):
    """Fine-tuning an SQ ensemble (training.SQTraining; SQ paper Eq. 7): the members' cross-entropy,
    beta times I(X~; T~) and mu times the feature bin spacing. The model needs the `sq` option."""

    name: Literal["sq"] = "sq"
    beta: NonNegative = 0.0
    mu: NonNegative = 0.0


class DQSpec(Spec):
    """Defensive Quantization's Lipschitz regulariser (training.DefensiveQuantization; Lin et al. 2019):
    cross-entropy plus beta / 2 times each weight layer's || W W^T - I ||_F^2."""

    name: Literal["dq"] = "dq"
    beta: NonNegative = 3e-4


StrategySpec = Annotated[Union[StandardSpec, AdversarialSpec, DVERGESpec, ADPSpec, GALSpec, CounterLinkedSpec, SQSpec,
                               DQSpec],
                         Field(discriminator="name")]
STRATEGY_NAMES = tuple(get_args(m.model_fields["name"].annotation)[0]
                       for m in (StandardSpec, AdversarialSpec, DVERGESpec, ADPSpec, GALSpec, CounterLinkedSpec, SQSpec,
                                 DQSpec))


def strategy_spec(value: Any) -> (StandardSpec | AdversarialSpec | DVERGESpec | ADPSpec | GALSpec | CounterLinkedSpec
                                  | SQSpec | DQSpec):
    """`value` (a dict naming a strategy, or a strategy spec) validated; SpecError naming each bad field."""
    if isinstance(value, BaseModel):
        return value
    try:
        return TypeAdapter(StrategySpec).validate_python(value)
    except ValidationError as err:
        raise SpecError(explain(err, StrategySpec, value, where="strategy")) from None


# --------------------------------------------------------------------------------- optimisation


class OptimSpec(Spec):
    """`training.fit`'s optimiser and schedule settings (milestones in epochs)."""

    optimizer: Optimizer = "sgd"
    lr: float = Field(gt=0)
    momentum: NonNegative = 0.9
    weight_decay: NonNegative = 5e-4
    nesterov: bool = False
    schedule: Schedule = "multistep"
    milestones: list[Annotated[int, Field(ge=1)]] = []
    gamma: float = Field(0.1, gt=0)


# --------------------------------------------------------------------------------- per-epoch metrics


class CleanMetric(Spec):
    """Accuracy on the clean images (evaluation.epoch_metrics.clean)."""

    name: Literal["clean"]


class RobustMetric(Spec):
    """Accuracy under `attack` (evaluation.epoch_metrics.robust)."""

    name: Literal["robust"]
    attack: AttackSpec


class DiversityMetric(Spec):
    """Mean pairwise vulnerability diversity, DVERGE Eq. 2 (evaluation.epoch_metrics.diversity)."""

    name: Literal["diversity"]
    eps: Budget
    steps: Count = 10
    step: StepSize | None = None
    seed: Seed = 0


class TransferabilityMetric(Spec):
    """Mean off-diagonal transfer rate between members (evaluation.epoch_metrics.transferability)."""

    name: Literal["transferability"]
    attack: AttackSpec
    among_source_fooled: bool = False

    @model_serializer(mode="wrap")
    def _without_later_default(self, handler: SerializerFunctionWrapHandler) -> dict:
        # added after models were stored: left out at its default, earlier keys stay as they were
        data = handler(self)
        if data.get("among_source_fooled") is False:
            del data["among_source_fooled"]
        return data


MetricSpec = Annotated[Union[CleanMetric, RobustMetric, DiversityMetric, TransferabilityMetric],
                       Field(discriminator="name")]


class EvalSpec(Spec):
    """Metrics recorded after every epoch on the first n images of a split."""

    split: Split = "test"
    n: Count
    metrics: list[MetricSpec] = Field(min_length=1)


# --------------------------------------------------------------------------------- training runs


def _parameters_of(model: ModelSpec) -> Any:
    """The model spec's dump without the options that add no parameter (activation, sq): two models
    with equal forms have the same parameters, so one's weights can start the other (DVERGE's GAL
    fine-tunes leaky-ReLU members from ReLU Baseline members at cpu; SQ ensembles fine-tune a
    standard network)."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in registry.PARAMETER_FREE_OPTIONS}
        return [strip(v) for v in value] if isinstance(value, list) else value
    return strip(model.model_dump(mode="json"))


class TrainingRun(Spec):
    """Everything that determines a trained model; the artifact key hashes its canonical form
    (with the training code's version and the training data's content fingerprint)."""

    model: ModelSpec
    data: DataSpec
    strategy: StrategySpec = StandardSpec()
    optim: OptimSpec
    epochs: Count
    seed: Seed
    eval: EvalSpec | None = None
    init: Union["TrainingRun", list["TrainingRun"], None] = None

    @model_validator(mode="after")
    def _init_fits(self) -> "TrainingRun":
        if self.init is None:
            return self
        if isinstance(self.init, list):
            members = getattr(self.model, "ensemble", None)
            if members is None or len(members) != len(self.init):
                want = f"{len(members)} (one per member)" if members else "a single spec (the model is not an ensemble)"
                raise ValueError(f"init lists {len(self.init)} specs; this model needs {want}")
            pairs = list(zip(self.init, members))
        else:
            pairs = [(self.init, self.model)]
        for i, (init, target) in enumerate(pairs):
            if _parameters_of(init.model) != _parameters_of(target):
                where = "init" if len(pairs) == 1 and not isinstance(self.init, list) else f"init[{i}]"
                raise ValueError(f"{where} trains {init.model.describe()}, which does not match the model it "
                                 f"initialises ({target.describe()}; only the activation and sq may differ)")
        return self

    def inits(self) -> list["TrainingRun"]:
        """The init specs as a list (empty when there are none)."""
        return [] if self.init is None else self.init if isinstance(self.init, list) else [self.init]

    def describe(self) -> str:
        return (f"{self.model.describe()} on {self.data.name}, {self.strategy.name}, {self.epochs} epochs, "
                f"seed {self.seed}")


TrainingRun.model_rebuild()


class ImagesSpec(Spec):
    """The first n images of a dataset split."""

    name: DatasetName
    split: Split
    n: Count


class AdversarialExamples(Spec):
    """Adversarial examples of some images, computed once against trained sources (combined as
    Ensemble(sources, combine) when there are several) and stored as data."""

    kind: Literal["adversarial"] = "adversarial"
    sources: list[TrainingRun] = Field(min_length=1)
    combine: Combine = "logit"
    attack: AttackSpec
    data: ImagesSpec
    batch_size: Count = 500

    def describe(self) -> str:
        sources = " + ".join(s.model.describe() for s in self.sources)
        return f"{self.attack.name} examples of {self.data.n} {self.data.name} {self.data.split} images from {sources}"


class StrongEvaluation(Spec):
    """Which of some images trained sources (combined as Ensemble(sources, combine) when there are
    several) keep correct under each attack of a strong suite and under all of them
    (`evaluation.strong_correct`), computed once and stored. `attacks` is the suite's canonical
    form (`Suite.canonical()`: cache.strong checks it against the attacks' own signatures)."""

    kind: Literal["strong"] = "strong"
    sources: list[TrainingRun] = Field(min_length=1)
    combine: Combine = "logit"
    attacks: list[dict[str, JsonValue]] = Field(min_length=1)
    data: ImagesSpec
    eps: Budget
    seed: Seed = 0
    batch_size: Count = 256

    def describe(self) -> str:
        sources = " + ".join(s.model.describe() for s in self.sources)
        names = "/".join(str(a.get("name")) for a in self.attacks)
        return (f"{names} worst case at eps {self.eps:g} on {self.data.n} {self.data.name} {self.data.split} images "
                f"of {sources}")


def training_run(value: Any) -> TrainingRun:
    """`value` (a dict or a TrainingRun) validated; SpecError naming each bad field."""
    return validate(TrainingRun, value, "spec")


def strong_evaluation(value: Any) -> StrongEvaluation:
    """`value` validated as a StrongEvaluation spec; SpecError naming each bad field."""
    return validate(StrongEvaluation, value, "strong")


def adversarial_examples(value: Any) -> AdversarialExamples:
    """`value` validated as an AdversarialExamples spec; SpecError naming each bad field."""
    return validate(AdversarialExamples, value, "adversarial")
