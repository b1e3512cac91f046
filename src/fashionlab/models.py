"""Models. Each takes normalised images of the data set's shape (`in_shape`: channels, height, width) and returns
logits for its `num_classes`; run.build passes both from the data set (a config that sets them itself must agree).

`features(x)` returns the penultimate layer: the PROJECTOR tab shows it after training. A model that cannot take
the data's images says so in one UserError, before training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from fashionlab.config import UserError

Shape = Sequence[int]


def build_model(cfg: DictConfig, shape: Sequence[int], classes: Sequence[str], named: str) -> nn.Module:
    """The model of config `cfg` for images of `shape` and these classes (what the data set holds): `in_shape` and
    `num_classes` are the data set's; a config that sets them must agree. `named` says which choices these are
    (model=..., data=...) in the one paragraph a mismatch gets."""
    shape = tuple(int(v) for v in shape)
    holds = f"{'x'.join(map(str, shape))} images of {len(classes)} classes"
    for key, given, wanted in (
        ("in_shape", cfg.get("in_shape"), shape),
        ("num_classes", cfg.get("num_classes"), len(classes)),
    ):
        if given is not None and (tuple(given) if key == "in_shape" else given) != wanted:
            raise UserError(
                f"{named}: model.{key}={list(given) if key == 'in_shape' else given} does not match the data, which "
                f"holds {holds}. Leave model.{key} null (the model takes the data set's), or choose data that fits."
            )
    try:
        return instantiate(cfg, in_shape=list(shape), num_classes=len(classes))
    except (UserError, InstantiationException) as e:  # Hydra raises the model's own error, or wraps it
        cause = e if isinstance(e, UserError) else e.__cause__
        if isinstance(cause, UserError):  # the model cannot take these images: say which, and what they are
            raise UserError(f"{named}: the model cannot take the data's {holds}. {cause}") from None
        raise


class LeNet5(nn.Module):
    """The PyTorch TensorBoard tutorial's LeNet-5 variant; the widths are config keys so sweeps can change them.

    conv 5x5 -> ReLU -> max-pool 2 -> conv 5x5 -> ReLU -> max-pool 2 -> fc -> fc -> fc. On Fashion-MNIST's 1x28x28:
    conv 1->6, conv 6->16, fc 256->120->84->10, as the tutorial. `padding` of both convolutions: auto is 0 for images
    of at least 16 pixels (two 5x5 convolutions and two poolings fit), else 2, which keeps each convolution's size,
    as LeNet-5's own 32x32 input is a 28x28 digit padded by 2 (scikit-learn's 8x8 digits, say).
    """

    def __init__(
        self,
        in_shape: Shape = (1, 28, 28),
        num_classes: int = 10,
        conv1_channels: int = 6,
        conv2_channels: int = 16,
        fc1_features: int = 120,
        fc2_features: int = 84,
        padding: int | str = "auto",
    ):
        super().__init__()
        channels, height, width = in_shape
        pad = (0 if min(height, width) >= 16 else 2) if padding == "auto" else int(padding)

        def out(size: int) -> int:  # after conv 5x5, pool 2, conv 5x5, pool 2
            return ((size + 2 * pad - 4) // 2 + 2 * pad - 4) // 2

        h, w = out(height), out(width)
        if min(h, w) < 1:
            raise UserError(
                f"model=lenet5 with model.padding={padding} shrinks {channels}x{height}x{width} images to nothing: two "
                f"5x5 convolutions and two 2x2 poolings need images of at least 16x16 pixels without padding (4x4 "
                f"with padding 2). Use model.padding=auto, larger images, or model=mlp / model=resnet."
            )
        self.conv1 = nn.Conv2d(channels, conv1_channels, 5, padding=pad)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(conv1_channels, conv2_channels, 5, padding=pad)
        self.fc1 = nn.Linear(conv2_channels * h * w, fc1_features)
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

    def __init__(
        self,
        in_shape: Shape = (1, 28, 28),
        num_classes: int = 10,
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.0,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_shape[0] * in_shape[1] * in_shape[2]
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, and the input added back (through a 1x1 convolution where the shape
    changes: He et al.'s option B)."""

    def __init__(self, channels_in: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or channels_in != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """The ResNet for small images of He et al. 2016 (section 4.2, CIFAR-10): a 3x3 stem, three stages of
    (depth - 2) / 6 basic blocks with `width`, 2 x `width` and 4 x `width` channels (the second and third halve the
    size), global average pooling, one linear layer. depth=20, width=16 is ResNet-20 (0.27 M parameters)."""

    def __init__(self, in_shape: Shape = (3, 32, 32), num_classes: int = 10, depth: int = 20, width: int = 16):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise UserError(
                f"model.depth={depth}: a CIFAR ResNet has 6n + 2 layers (8, 14, 20, 32, 44, 56, 110): choose one."
            )
        blocks = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_shape[0], width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        layers, channels = [], width
        for stage, out in enumerate((width, 2 * width, 4 * width)):
            for i in range(blocks):
                layers.append(BasicBlock(channels, out, 2 if stage > 0 and i == 0 else 1))
                channels = out
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():  # as He et al. initialise (and torchvision's ResNets)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
