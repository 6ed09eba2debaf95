"""The Strength in Numbers chapter's parameters (notebooks/strength_in_numbers.ipynb).

Seven trained models (Baseline, Ensemble2, Ensemble4 by standard training; SingleAdv, DoubleAdv,
Ensemble2Adv, Ensemble4Adv by adversarial training, Eq. 3/4 with rho = 1), a second SingleAdv for
Separate2Adv, and a standard-trained surrogate pair for the black-box column. The base network is
a Wide ResNet WRN-depth-widen; DoubleAdv is one larger WRN with about the parameters of two base
networks (SiN: WRN-28-10 -> WRN-28-15, 2.25x; widen_factor is an integer, so at WRN-10-1 the only
~2x single network is the deeper WRN-16-1, 1.13x the parameters of two WRN-10-1).

Profiles: smoke = a 600-image subset of digits (8x8), under a minute; cpu = a 3,000-image
Fashion-MNIST subset, WRN-10-1, IFGSM-3 training, the whole notebook about 15 minutes on two
cores; gpu = CIFAR-10 WRN-16-4 with a short one-cycle recipe; paper = WRN-28-10 with SiN's schedule (500k steps of batch 128, lr 0.1
decayed x0.2 at 30k/60k/90k steps, IFGSM-7 training, eps 8/255, 500-step curves).
"""

from ..data.catalog import NAMES
from ..profiles import CHAPTER_SEED_MAX, Param

EPS_8 = round(8 / 255, 4)  # SiN's CIFAR-10 budget, 8/255 in pixel units
STEP_2 = round(2 / 255, 4)  # Madry et al.'s CIFAR-10 IFGSM-7 step, which SiN follows

PARAMETERS = (
    Param("dataset", "str", {"smoke": "digits", "cpu": "fashion_mnist", "gpu": "cifar10", "paper": "cifar10"},
          "dataset every model is trained and attacked on", choices=NAMES),
    Param("train_size", "int", {"smoke": 600, "cpu": 3000, "gpu": 0, "paper": 0},
          "training images: a fixed random subset of this size of the training split, or 0 for all of it",
          minimum=0, maximum=60000),
    Param("depth", "int", {"smoke": 10, "cpu": 10, "gpu": 16, "paper": 28},
          "depth of the base Wide ResNet (6n + 4: 10, 16, 22, 28, ...)", minimum=10, maximum=100),
    Param("widen", "int", {"smoke": 1, "cpu": 1, "gpu": 4, "paper": 10},
          "widen factor of the base Wide ResNet", minimum=1, maximum=20),
    Param("double_depth", "int", {"smoke": 16, "cpu": 16, "gpu": 16, "paper": 28},
          "depth of DoubleAdv, the single network with about the parameters of Ensemble2Adv", minimum=10, maximum=100),
    Param("double_widen", "int", {"smoke": 1, "cpu": 1, "gpu": 6, "paper": 15},
          "widen factor of DoubleAdv (SiN: 15 against the base's 10)", minimum=1, maximum=30),
    Param("surrogate", "str", {"smoke": "small_cnn", "cpu": "small_cnn", "gpu": "vgg11_bn", "paper": "vgg11_bn"},
          "the VGG-like half of the black-box surrogate (the other half is a deeper WRN)",
          choices=("small_cnn", "vgg11_bn")),
    Param("epochs", "int", {"smoke": 2, "cpu": 3, "gpu": 15, "paper": 1280},
          "training epochs of every model (SiN: 500k steps of 128 images, i.e. 1,280 CIFAR-10 epochs)",
          minimum=1, maximum=2000),
    Param("batch_size", "int", {"smoke": 64, "cpu": 128, "gpu": 256, "paper": 128}, "training batch size",
          minimum=1, maximum=4096),
    Param("lr", "float", 0.1, "initial SGD learning rate (momentum 0.9)", minimum=1e-6, maximum=10.0),
    Param("schedule", "str", {"smoke": "onecycle", "cpu": "onecycle", "gpu": "onecycle", "paper": "multistep"},
          "learning-rate schedule; multistep decays x0.2 at SiN's 30k/60k/90k steps",
          choices=("onecycle", "cosine", "multistep")),
    Param("augment", "bool", {"smoke": False, "cpu": False, "gpu": True, "paper": True},
          "random crop and flip while training"),
    Param("eps", "float", {"smoke": 0.1, "cpu": 0.1, "gpu": EPS_8, "paper": EPS_8},
          "L-inf budget of training and every attack (pixel units)", minimum=0.0, maximum=1.0),
    Param("train_steps", "int", {"smoke": 3, "cpu": 3, "gpu": 7, "paper": 7},
          "IFGSM steps of the training attack (SiN: 7)", minimum=1, maximum=100),
    Param("train_step", "float", {"smoke": 0.05, "cpu": 0.05, "gpu": STEP_2, "paper": STEP_2},
          "step of the training IFGSM (pixel units)", minimum=1e-4, maximum=1.0),
    Param("attack_step", "float", {"smoke": 0.025, "cpu": 0.025, "gpu": STEP_2, "paper": STEP_2},
          "step of the evaluation attacks: IFGSM's sign step, PGD's Adam learning rate (pixel units)",
          minimum=1e-4, maximum=1.0),
    Param("curve_steps", "int", {"smoke": 20, "cpu": 50, "gpu": 200, "paper": 500},
          "longest PGD of the accuracy-vs-steps curve (SiN Fig. 2c: 500)", minimum=20, maximum=5000),
    Param("appendix_steps", "int", {"smoke": 5, "cpu": 20, "gpu": 100, "paper": 200},
          "PGD steps of the Appendix A attacks (CW margin; SiN: until accuracy stops falling)",
          minimum=1, maximum=5000),
    Param("n_eval", "int", {"smoke": 100, "cpu": 300, "gpu": 2000, "paper": 10000},
          "test images evaluated and attacked (the first n_eval of the test split)", minimum=10, maximum=10000),
    Param("n_epoch_eval", "int", {"smoke": 50, "cpu": 200, "gpu": 1000, "paper": 1000},
          "test images of the per-epoch clean/robust evaluation (training curves)", minimum=10, maximum=10000),
    Param("seed", "int", 0, "seed of the first model; every other model and member gets its own",
          minimum=0, maximum=CHAPTER_SEED_MAX),
)
