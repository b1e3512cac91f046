"""The data sets (conf/data/): each holds its images in memory as uint8 on the training device and says what they
are (shape, classes, normalisation: base.py). Fashion-MNIST and MNIST (idx.py), CIFAR-10 (cifar.py), the user's
own image folders (folder.py), scikit-learn's digits and synthetic images of any shape (generated.py).
"""

from fashionlab.data.base import ImageData, PerSampleDataset
from fashionlab.data.cifar import CIFAR10
from fashionlab.data.folder import ImageFolder
from fashionlab.data.generated import Digits, Synthetic
from fashionlab.data.idx import MNIST, FashionMNIST, read_idx

__all__ = [
    "CIFAR10",
    "MNIST",
    "Digits",
    "FashionMNIST",
    "ImageData",
    "ImageFolder",
    "PerSampleDataset",
    "Synthetic",
    "read_idx",
]
