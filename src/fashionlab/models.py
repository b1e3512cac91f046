"""Models. Each one takes normalised 1x28x28 images and returns class logits.

`features(x)` returns the penultimate layer: the PROJECTOR tab shows it after training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LeNet5(nn.Module):
    """The PyTorch TensorBoard tutorial's LeNet-5 variant; the widths are config keys so sweeps can change them.

    conv 1->6 k5, ReLU, max-pool 2, conv 6->16 k5, ReLU, max-pool 2, fc 256->120->84->10.
    """

    def __init__(
        self,
        num_classes: int = 10,
        conv1_channels: int = 6,
        conv2_channels: int = 16,
        fc1_features: int = 120,
        fc2_features: int = 84,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(1, conv1_channels, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(conv1_channels, conv2_channels, 5)
        self.fc1 = nn.Linear(conv2_channels * 4 * 4, fc1_features)
        self.fc2 = nn.Linear(fc1_features, fc2_features)
        self.fc3 = nn.Linear(fc2_features, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # Pool before ReLU: the same function (both are monotone), but ReLU then touches a quarter of the values.
        x = F.relu(self.pool(self.conv1(x)))
        x = F.relu(self.pool(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return F.relu(self.fc2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.features(x))


class MLP(nn.Module):
    """A plain multi-layer perceptron on the flattened image: the baseline the convolutions must beat."""

    def __init__(self, num_classes: int = 10, hidden: tuple[int, ...] = (256, 128), dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = 28 * 28
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
