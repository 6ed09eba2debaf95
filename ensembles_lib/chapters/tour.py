"""The tour chapter's parameters (notebooks/tour.ipynb): two members, an ensemble, FGSM and PGD.

The members are the same architecture trained from different seeds (seed, seed + 1), so the
transfer matrix shows how much two standardly trained networks share their weaknesses.
"""

from ..data.catalog import NAMES
from ..profiles import CHAPTER_SEED_MAX, Param

EPS_8 = round(8 / 255, 4)  # the papers' CIFAR-10 budget, 8/255 in pixel units

PARAMETERS = (
    Param("dataset", "str", {"smoke": "digits", "cpu": "fashion_mnist", "gpu": "cifar10", "paper": "cifar10"},
          "dataset the members are trained and attacked on", choices=NAMES),
    Param("architecture", "str", {"smoke": "small_cnn", "cpu": "small_cnn", "gpu": "resnet20", "paper": "resnet20"},
          "architecture of both members (see ensembles_lib.models.names())",
          choices=("small_cnn", "mlp", "lenet5", "resnet20", "resnet32", "vgg11_bn", "resnet18")),
    Param("width", "int", {"smoke": 16, "cpu": 16, "gpu": 32, "paper": 32},
          "first-stage channels of small_cnn (ignored by other architectures)", minimum=4, maximum=256),
    Param("epochs", "int", {"smoke": 3, "cpu": 2, "gpu": 15, "paper": 200}, "training epochs per member",
          minimum=1, maximum=1000),
    Param("batch_size", "int", {"smoke": 64, "cpu": 256, "gpu": 256, "paper": 128}, "training batch size",
          minimum=1, maximum=4096),
    Param("lr", "float", {"smoke": 0.05, "cpu": 0.05, "gpu": 0.1, "paper": 0.1},
          "initial SGD learning rate (cosine schedule)", minimum=1e-6, maximum=10.0),
    Param("augment", "bool", {"smoke": False, "cpu": False, "gpu": True, "paper": True},
          "random crop and flip while training"),
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
          minimum=0, maximum=CHAPTER_SEED_MAX),
)
