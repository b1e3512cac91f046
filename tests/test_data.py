"""The data path: where Fashion-MNIST comes from, what happens when it is missing or broken, batch equivalence."""

from __future__ import annotations

import pytest
import torch

from conftest import FILES, write_idx_gz
from fashionlab.config import UserError
from fashionlab.data import FashionMNIST, Synthetic

CPU = torch.device("cpu")


def test_missing_everywhere_says_how_to_get_it(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    data = FashionMNIST(root=str(tmp_path / "data"), debian_dir=str(tmp_path / "nowhere"))
    with pytest.raises(UserError) as e:
        data.setup(CPU)
    for hint in ("apt-get install dataset-fashion-mnist", "data.root=", "Error downloading", "data=synthetic"):
        assert hint in str(e.value)


def test_a_truncated_file_is_named(tmp_path):
    debian = write_idx_gz(tmp_path / "debian", n_train=100, n_test=20)
    data = FashionMNIST(root=str(tmp_path / "data"), debian_dir=str(debian), val_size=10)
    data.setup(CPU)  # unpacks the files into data.root
    broken = tmp_path / "data" / "FashionMNIST" / "raw" / FILES[2]
    broken.write_bytes(broken.read_bytes()[:5000])
    with pytest.raises(UserError, match=f"{broken}.*truncated or corrupt.*Delete it"):
        FashionMNIST(root=str(tmp_path / "data"), debian_dir=str(debian), val_size=10).setup(CPU)


def test_a_data_root_that_cannot_be_written(tmp_path, idx_dir):
    (tmp_path / "file").write_text("not a folder")
    data = FashionMNIST(root=str(tmp_path / "file" / "data"), debian_dir=str(idx_dir))
    with pytest.raises(UserError, match="is not writable.*Pass a writable folder"):
        data.setup(CPU)


def test_a_validation_split_larger_than_the_data(idx_dir, tmp_path):
    data = FashionMNIST(root=str(tmp_path), debian_dir=str(idx_dir), val_size=600)
    with pytest.raises(UserError, match="data.val_size=600 leaves no training images.*600 images"):
        data.setup(CPU)


def test_in_memory_and_per_sample_paths_give_the_same_batches():
    fast, slow = (
        Synthetic(num_train=300, num_test=50, val_size=50, batch_size=32, in_memory=m, num_workers=0)
        for m in (True, False)
    )
    fast.setup(CPU), slow.setup(CPU)
    a = list(fast.train_batches(torch.Generator().manual_seed(1)))
    b = list(slow.train_batches(torch.Generator().manual_seed(1)))
    assert len(a) == len(b) == 8  # 250 images in batches of 32
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(ya, yb)
        assert torch.allclose(xa, xb, atol=1e-6) and xa.min() >= -1 and xa.max() <= 1
    evals = [torch.cat([x for x, _ in d.eval_batches("test")]) for d in (fast, slow)]
    assert torch.allclose(*evals, atol=1e-6)


def test_resuming_mid_epoch_replays_the_rest_of_the_same_order():
    data = Synthetic(num_train=300, num_test=50, val_size=50, batch_size=32)
    data.setup(CPU)
    whole = list(data.train_batches(torch.Generator().manual_seed(5)))
    rest = list(data.train_batches(torch.Generator().manual_seed(5), skip=3))
    assert len(rest) == len(whole) - 3
    assert all(torch.equal(a[1], b[1]) for a, b in zip(whole[3:], rest))


def test_the_split_does_not_move_with_the_training_seed():
    a, b = Synthetic(val_size=100), Synthetic(val_size=100)
    a.setup(CPU), b.setup(CPU)
    assert torch.equal(a.splits["val"][1], b.splits["val"][1])
