"""The TREND chapter's parameters (notebooks/trend.ipynb): transferability across seeds,
architectures and quantised inputs, weights and activations; the transferability metric (Eq. 3-5);
attacks on voting ensembles (Eq. 6-7) and the TREND selection of low-transfer members.

Budgets are L-inf in pixel units. The paper (CIFAR-10) attacks with PGD, 40 steps of 0.01 at
8/255, a step of about 0.32 eps; we keep that ratio at every budget (`step_ratio`). Fashion-MNIST
(`cpu`) uses the usual 0.1 instead of 8/255.

Why Fashion-MNIST at `cpu`: measured on this project's 2-core machine (2026-12-06, one epoch,
batch 128), CIFAR-10 (JPEG copy) members reach 57% (vgg11_bn at width 8, 27 s for two epochs) to
65% (small_cnn at width 16, 55 s), and the chapter trains 12 members: minutes of training for
members that get barely half the test images right, which leaves few images that all of them
classify correctly (the paper's evaluation set). On Fashion-MNIST a width-8 VGG-11 with batch
norm reaches 89% in 10 s (one epoch on 30,000 images) and its input-quantised versions 84-88%.
The paper's two base networks, ResNet-18 and VGG-11, are the gpu/paper bases; at cpu the base is
VGG-11 with batch norm (the paper's Table II has it too) and the residual family is a ResNet-20.

Not done: the paper keeps the weights of the epoch with the best validation accuracy (Table I's
5,000 held-out images); the library's training loop keeps the last epoch's, so gpu/paper train on
the 45,000 other images (the "fit" split) and keep the last epoch.
"""

from ..claims import All, Claim, Paired, Point
from ..data.catalog import NAMES
from ..profiles import CHAPTER_SEED_MAX, Param

EPS_8 = round(8 / 255, 4)  # the paper's CIFAR-10 budget, 0.0314 in pixel units

# every registered architecture (models.names(); tests/test_trend_chapter.py checks the two agree)
ARCHITECTURES = ("lenet5", "mlp", "resnet18", "resnet20", "resnet32", "resnet34", "resnet50", "resnet56", "resnet101",
                 "small_cnn", "vgg11", "vgg11_bn", "vgg19", "vgg19_bn", "wide_resnet")
QUANTISED = ("FP", "Q1", "Q2", "Q4", "Q8", "HT")  # names of the input-quantised members (FP: full precision)


def family(architecture: str) -> str:
    """The family of an architecture name as the paper groups Fig. 1: "ResNet" (residual), "VGG",
    or "plain" (the small convolutional and dense nets of the smoke and cpu profiles)."""
    if architecture.startswith(("resnet", "wide_resnet")):
        return "ResNet"
    return "VGG" if architecture.startswith("vgg") else "plain"


# measured (`ensembles run trend`, empty data root, 2 idle cores, 2026-12-06): cpu 496 s and 516 s in two runs, of
# which training 130 s,
# the transfer curves of the input-quantised members 157 s and the ensemble attacks 154 s (bench/chapter_time.py)
MINUTES = {"smoke": 1, "cpu": 9, "gpu": None, "paper": None}

PARAMETERS = (
    Param("dataset", "str", {"smoke": "digits", "cpu": "fashion_mnist", "gpu": "cifar10", "paper": "cifar10"},
          "dataset every model is trained and attacked on", choices=NAMES, retrains=True),
    Param("base", "str", {"smoke": "small_cnn", "cpu": "vgg11_bn", "gpu": "resnet18", "paper": "resnet18"},
          "architecture of the seeded and quantised members (the paper: ResNet-18, VGG-11 in its appendix)",
          choices=ARCHITECTURES, retrains=True),
    Param("architectures", "strs", {"smoke": ("small_cnn", "resnet20"), "cpu": ("vgg11_bn", "vgg19_bn", "resnet20"),
                                    "gpu": ("resnet18", "resnet34", "resnet50", "vgg11", "vgg19", "vgg11_bn", "vgg19_bn"),
                                    "paper": ("resnet18", "resnet34", "resnet50", "resnet101", "vgg11", "vgg19",
                                              "vgg11_bn", "vgg19_bn")},
          "architectures of the cross-architecture matrix (Fig. 1); names starting resnet are the ResNet family, vgg the VGG family",
          choices=ARCHITECTURES, retrains=True),
    Param("width", "int", {"smoke": 8, "cpu": 8, "gpu": 64, "paper": 64},
          "first-stage channels of every member (ignored by lenet5)", minimum=4, maximum=256, retrains=True),
    Param("seeds", "int", {"smoke": 3, "cpu": 3, "gpu": 4, "paper": 4},
          "differently seeded copies of the base (Table II: 4); the first is the source", minimum=3, maximum=10,
          retrains=True),
    Param("input_bits", "ints", {"smoke": (1, 2), "cpu": (1, 2, 4, 8), "gpu": (1, 2, 4, 6, 8), "paper": (1, 2, 4, 6, 8)},
          "input bit widths of the quantised members (Eq. 1-2)", minimum=1, maximum=16, retrains=True),
    Param("halftone", "bool", True, "train a halftoned member (HT)", retrains=True),
    Param("input_range", "str", "unit",
          "the range Eq. 1-2 bins: unit (the fixed pixel range, one image's bins independent of its batch) or batch "
          "(the minibatch's min and max, as Eq. 1-2 write it)", choices=("unit", "batch"), retrains=True),
    Param("weight_bits", "ints", {"smoke": (1,), "cpu": (1,), "gpu": (1, 2, 4, 8), "paper": (1, 2, 4, 8, 16)},
          "weight bit widths of the weight-quantised members (W)", minimum=1, maximum=16, retrains=True),
    Param("activation_bits", "ints", {"smoke": (2,), "cpu": (2,), "gpu": (1, 2, 4, 8), "paper": (1, 2, 4, 8, 16)},
          "activation bit widths of the activation-quantised members (A)", minimum=1, maximum=16, retrains=True),
    Param("train_size", "int", {"smoke": 0, "cpu": 30000, "gpu": 0, "paper": 0},
          "training images of every member: a fixed random subset of that size, or 0 for the 90% the paper trains on "
          "(Table I: 45,000 of CIFAR-10's 50,000)", minimum=0, maximum=60000, retrains=True),
    Param("epochs", "int", {"smoke": 3, "cpu": 1, "gpu": 30, "paper": 350}, "training epochs of every member",
          minimum=1, maximum=1000, retrains=True),
    Param("batch_size", "int", 128, "training batch size", minimum=2, maximum=4096, retrains=True),
    Param("lr", "float", {"smoke": 0.1, "cpu": 0.1, "gpu": 0.1, "paper": 0.01},
          "peak SGD learning rate (the paper: 0.01, divided by 10 at 60% and 80% of training)", minimum=1e-6,
          maximum=10.0, retrains=True),
    Param("schedule", "str", {"smoke": "onecycle", "cpu": "onecycle", "gpu": "onecycle", "paper": "multistep"},
          "learning-rate schedule (paper: multistep at 60% and 80% of the epochs)",
          choices=("onecycle", "cosine", "multistep"), retrains=True),
    Param("augment", "bool", {"smoke": False, "cpu": False, "gpu": True, "paper": True},
          "random crop and flip while training", retrains=True),
    Param("eps", "float", {"smoke": 0.1, "cpu": 0.1, "gpu": EPS_8, "paper": EPS_8},
          "budget of the transfer matrices (pixel units; the paper: 8/255)", minimum=0.0, maximum=1.0),
    Param("step_ratio", "float", 0.32, "PGD step as a fraction of the budget (the paper: 0.01 at 8/255)",
          minimum=0.01, maximum=2.0),
    Param("transfer_steps", "int", {"smoke": 3, "cpu": 20, "gpu": 40, "paper": 40},
          "PGD iterations of every transfer measurement (the paper: 40)", minimum=1, maximum=1000),
    Param("n_eval", "int", {"smoke": 100, "cpu": 1000, "gpu": 1000, "paper": 1000},
          "test images of the transfer matrices: the first n_eval that every member classifies correctly (the paper: 1000)",
          minimum=10, maximum=10000),
    Param("tm_points", "int", {"smoke": 6, "cpu": 8, "gpu": 20, "paper": 20},
          "budgets of the transfer curves (Fig. 5): eps/4, 2 eps/4, ... (the paper: 20)", minimum=6, maximum=40),
    Param("tm_fit", "int", 4, "budgets each curve is fitted from (Eq. 3-4; the paper: 4), spread over the curve's "
          "budgets other than eps", minimum=2, maximum=10),
    Param("ensemble_size", "int", 3, "members of every voting ensemble (the paper's FP-Q1-Q2: 3)", minimum=2,
          maximum=5),
    Param("ensemble_eps", "floats", {"smoke": (0.05, 0.1), "cpu": (0.05, 0.1, 0.15),
                                     "gpu": (0.0157, 0.0314, 0.0471, 0.0627), "paper": (0.0157, 0.0314, 0.0471, 0.0627)},
          "budgets of the ensemble attacks (Fig. 7)", minimum=0.0, maximum=1.0),
    Param("ensemble_steps", "int", {"smoke": 3, "cpu": 10, "gpu": 20, "paper": 20},
          "PGD iterations of the ensemble attacks (the paper: 20)", minimum=1, maximum=1000),
    Param("n_ensemble", "int", {"smoke": 60, "cpu": 500, "gpu": 1000, "paper": 1000},
          "test images of the ensemble attacks (the first n_ensemble of the test split)", minimum=10, maximum=10000),
    Param("tie_draws", "int", {"smoke": 4, "cpu": 8, "gpu": 16, "paper": 16},
          "tie-break draws a voting ensemble's accuracy is averaged over (EOT over its randomness)", minimum=1,
          maximum=256),
    Param("square_queries", "int", {"smoke": 50, "cpu": 300, "gpu": 5000, "paper": 5000},
          "queries an image of the gradient-free Square attack on the vote (AutoAttack: 5000)", minimum=1,
          maximum=100000),
    Param("seed", "int", 0, "seed of the first copy of the base and of every other member (copy k: seed + k) and of "
          "the attacks", minimum=0, maximum=CHAPTER_SEED_MAX, retrains=True),
)

SEED_CLOSE = 0.1  # "does not radically change": transfer to two differently seeded copies within 10 points
LOW_BITS_CLOSE = 0.1  # "falls only at 1-2 bits": Q4 and Q8 within 10 points of full precision as targets
TM_ERROR_PAPER = 0.055  # the paper's mean |predicted - measured| TM on CIFAR-10
TM_ERROR_MARGIN = 0.045  # "small": ours below the paper's plus this, i.e. below 0.1

# Declared before the run. Quantities are per-image over the chapter's common images (those every
# member classifies correctly): "transfer to seed k", whether the base's adversarial version (made
# on seed copy 0) fools seed copy k as well (TREND's transfer); "within-family transfer" /
# "cross-family transfer", per image the share of ordered (source, target) pairs of different
# architectures in one family / in the VGG and ResNet families that the image transfers between;
# "VGG -> ResNet" / "ResNet -> VGG", the same share over the cross-family pairs of one direction;
# "into X", the share of the other input-quantised sources whose adversarial version transfers to
# target X ("into low bits": targets Q1, Q2, HT; "into high bits": FP, Q4, Q8); ensemble
# quantities are per-image accuracies of voting ensembles averaged over tie-break draws and the
# budgets of `ensemble_eps`.
CLAIMS = (
    Claim("seeds_alike",
          "Initialisation hardly changes transferability: attacks on one seed transfer about equally to other seeds.",
          "ResNet-18: 509, 534, 566 of 1000 to seeds 2-4; VGG-11: 717, 760, 709 (Table II)",
          f"the transfer rates to the second and third copies (same architecture, other seeds) differ by less than "
          f"{SEED_CLOSE:g} (exact McNemar interval of the difference within ±{SEED_CLOSE:g})",
          Paired("transfer to seed 1", "transfer to seed 2", within=SEED_CLOSE)),
    Claim("family_matters",
          "Adversarial images transfer more within an architecture family than across families.",
          "darker within-family quadrants in Fig. 1",
          "per image, the share of within-family pairs it transfers between minus the share of VGG/ResNet "
          "cross-family pairs, above 0 (paired bootstrap)",
          Paired("within-family transfer", "cross-family transfer", above=0.0)),
    Claim("vgg_to_resnet",
          "Transfer is asymmetric: VGG-made examples fool ResNets more than ResNet-made examples fool VGGs.",
          "top-right quadrant of Fig. 1 lighter than the bottom-left",
          "per image, the share of VGG -> ResNet pairs minus the share of ResNet -> VGG pairs, above 0 (paired "
          "bootstrap)",
          Paired("VGG -> ResNet", "ResNet -> VGG", above=0.0)),
    Claim("low_bits_hardest_targets",
          "Members with 1- or 2-bit or halftoned inputs are the hardest targets of a transfer attack.",
          "lowest column averages for Q1, Q2, HT (Fig. 2)",
          "per image, the share of transfers into Q1, Q2 and HT minus that into FP, Q4 and Q8, below 0 (paired "
          "bootstrap)",
          Paired("into low bits", "into high bits", below=0.0)),
    Claim("only_low_bits",
          "Input quantisation cuts transferability only at 1-2 bits: 4- and 8-bit members are as easy targets as full precision.",
          "Q4, Q8 columns close to FP's (Fig. 2)",
          f"transfer into Q4 and into Q8 each within {LOW_BITS_CLOSE:g} of transfer into FP, from the same sources "
          "(Q1, Q2, HT and the other of Q4/Q8; paired bootstrap interval within the margin)",
          All((Paired("into Q4", "into FP, Q4's sources", within=LOW_BITS_CLOSE),
               Paired("into Q8", "into FP, Q8's sources", within=LOW_BITS_CLOSE)),
              labels=("Q4 like FP", "Q8 like FP"))),
    Claim("tm_predicts",
          "The transferability metric fitted from 4 budgets predicts the measured one well.",
          f"mean |predicted - measured| TM {TM_ERROR_PAPER} (CIFAR-10)",
          f"our mean |predicted - measured| TM at eps over the input-quantised members' off-diagonal pairs, minus "
          f"the paper's {TM_ERROR_PAPER}, below {TM_ERROR_MARGIN} (ours below {TM_ERROR_PAPER + TM_ERROR_MARGIN:g}; "
          "a point comparison: no interval over the fits)",
          Point("TM error", "TM error (paper)", below=TM_ERROR_MARGIN)),
    Claim("sign_average_strongest",
          "Sign Average is the strongest of the three ways to attack an ensemble through its members.",
          "Sign Average well below Gradient Average and Sign All (Fig. 7)",
          "per image, the ensembles' accuracy under Sign Average minus that under each other rule, below 0 (paired "
          "bootstrap), averaged over the ensembles and budgets",
          All((Paired("ensembles under Sign Average", "ensembles under Gradient Average", below=0.0),
               Paired("ensembles under Sign Average", "ensembles under Sign All", below=0.0)),
              labels=("below Gradient Average", "below Sign All"))),
    Claim("low_tm_more_robust",
          "The ensemble TREND selects (lowest transferability metric) is more robust than a high-TM ensemble.",
          "FP-Q1-Q2 above every other ensemble at every budget (Fig. 7)",
          "per image, the TREND ensemble's accuracy under Sign Average minus the highest-TM ensemble's, above 0 "
          "(paired bootstrap), averaged over the budgets",
          Paired("TREND ensemble", "high-TM ensemble", above=0.0)),
    Claim("beats_its_members",
          "The TREND ensemble is more robust than any of its members alone.",
          "FP-Q1-Q2 more than 25% more robust than FP, Q1 or Q2 (Sec. V-B)",
          "per image, the TREND ensemble's accuracy under Sign Average minus its most robust member's under PGD, "
          "above 0 (paired bootstrap), averaged over the budgets",
          Paired("TREND ensemble", "its best member", above=0.0)),
    Claim("low_tm_survives_adaptive",
          "Beyond the paper: the TREND ensemble stays more robust than the high-TM one under the strongest attack we have.",
          "— (the paper attacks with its three rules only)",
          "at eps, per image, the TREND ensemble's accuracy minus the high-TM ensemble's, each under its per-image "
          "worst case over every attack of the adaptive section, above 0 (paired bootstrap)",
          Paired("TREND ensemble, worst case", "high-TM ensemble, worst case", above=0.0)),
)
