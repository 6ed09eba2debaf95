"""The tour chapter's parameters (notebooks/tour.ipynb): two members, an ensemble, FGSM and PGD.

The members are the same architecture trained from different seeds (seed, seed + 1), so the
transfer matrix shows how much two standardly trained networks share their weaknesses.
"""

from ..claims import Claim, Paired, Threshold
from ..data.catalog import NAMES
from ..profiles import CHAPTER_SEED_MAX, Param

EPS_8 = round(8 / 255, 4)  # the papers' CIFAR-10 budget, 8/255 in pixel units

# measured (`ensembles run tour`, empty data root, 2 idle cores, 2026-12-06): smoke in seconds, cpu 189 s
MINUTES = {"smoke": 1, "cpu": 3, "gpu": None, "paper": None}

PARAMETERS = (
    Param("dataset", "str", {"smoke": "digits", "cpu": "fashion_mnist", "gpu": "cifar10", "paper": "cifar10"},
          "dataset the members are trained and attacked on", choices=NAMES, retrains=True),
    Param("architecture", "str", {"smoke": "small_cnn", "cpu": "small_cnn", "gpu": "resnet20", "paper": "resnet20"},
          "architecture of both members (see ensembles_lib.models.names())",
          choices=("small_cnn", "mlp", "lenet5", "resnet20", "resnet32", "vgg11_bn", "resnet18"), retrains=True),
    Param("width", "int", {"smoke": 16, "cpu": 16, "gpu": 32, "paper": 32},
          "first-stage channels of small_cnn (ignored by other architectures)", minimum=4, maximum=256, retrains=True),
    Param("train_size", "int", 0,
          "training images: a fixed random subset of this size of the training split, or 0 for all of it",
          minimum=0, maximum=60000, retrains=True),
    Param("epochs", "int", {"smoke": 3, "cpu": 2, "gpu": 15, "paper": 200}, "training epochs per member",
          minimum=1, maximum=1000, retrains=True),
    Param("batch_size", "int", {"smoke": 64, "cpu": 256, "gpu": 256, "paper": 128}, "training batch size",
          minimum=1, maximum=4096, retrains=True),
    Param("lr", "float", {"smoke": 0.05, "cpu": 0.05, "gpu": 0.1, "paper": 0.1},
          "initial SGD learning rate (cosine schedule)", minimum=1e-6, maximum=10.0, retrains=True),
    Param("augment", "bool", {"smoke": False, "cpu": False, "gpu": True, "paper": True},
          "random crop and flip while training", retrains=True),
    Param("combine", "str", "prob", "how the ensemble combines its members' outputs",
          choices=("prob", "logit", "vote")),
    Param("eps", "float", {"smoke": 0.1, "cpu": 0.1, "gpu": EPS_8, "paper": EPS_8},
          "L-inf budget of the FGSM/PGD comparison and the transfer matrix (pixel units)", minimum=0.0, maximum=1.0),
    Param("eps_grid", "floats", {"smoke": (0.0, 0.05, 0.1, 0.2), "cpu": (0.0, 0.01, 0.02, 0.03, 0.05, 0.1),
                                 "gpu": (0.0, 0.0078, 0.0157, EPS_8, 0.0627),
                                 "paper": (0.0, 0.0078, 0.0157, EPS_8, 0.0627)},
          "budgets of the accuracy-vs-eps curve (pixel units)", minimum=0.0, maximum=1.0),
    Param("pgd_steps", "int", {"smoke": 5, "cpu": 10, "gpu": 20, "paper": 50}, "PGD iterations", minimum=1, maximum=1000),
    Param("n_eval", "int", {"smoke": 200, "cpu": 1000, "gpu": 2000, "paper": 10000},
          "test images evaluated and attacked (the first n_eval of the test split)", minimum=10, maximum=10000),
    Param("seed", "int", 0, "seed of the first member (the second uses seed + 1) and of the attacks",
          minimum=0, maximum=CHAPTER_SEED_MAX, retrains=True),
)

# Declared before the run. Quantities (measured by the notebook's last cells): per-image correctness
# of the ensemble under each attack and of the clean ensemble and its weaker member, and the
# members' mean off-diagonal transfer rate with the number of images it was measured on.
CLAIMS = (
    Claim("pgd_at_least_fgsm",
          "At the same budget, iterated PGD lowers the ensemble's accuracy at least as much as one-step FGSM.",
          "—", "the ensemble's accuracy under PGD minus under FGSM, on the same images, is below 0 "
               "(exact McNemar; a tie is undecided)",
          Paired("ensemble under PGD", "ensemble under FGSM", below=0.0)),
    Claim("ensemble_at_least_weaker_member",
          "The ensemble is at least as accurate on clean images as its weaker member.",
          "—", "the ensemble's clean accuracy minus its weaker member's, on the same images, is above -0.01 "
               "(one point of slack; exact McNemar)",
          Paired("clean ensemble", "clean weaker member", above=-0.01)),
    Claim("members_transfer",
          "Adversarial examples crafted on one standardly trained member fool the other most of the time.",
          "0.96–0.98 (DVERGE Fig. 3, baseline ResNet-20 ensemble, CIFAR-10, eps 0.03)",
          "'most of the time': the mean off-diagonal transfer rate is above 0.5 (Wilson interval on the images "
          "every member classifies correctly)",
          Threshold("transfer rate between members", above=0.5)),
)
