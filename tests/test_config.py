"""Configs compose and build; bad input fails early with a clear message; untrusted targets are refused."""

from __future__ import annotations

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import execution_whitelist, instantiate

from conftest import SMOKE, compose, main, train
from fashionlab.config import UserError, check_config
from fashionlab.hydra_setup import EXECUTION_WHITELIST
from fashionlab.models import build_model

GROUPS = {
    "model": ["lenet5", "mlp", "resnet"],
    "optimizer": ["sgd", "adam", "adamw"],
    "data": ["fashion_mnist", "mnist", "cifar10", "image_folder", "digits", "synthetic"],
    "augment": ["none", "crop_flip"],
}


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_composes_and_builds(group, option, tmp_path):
    cfg = compose(f"{group}={option}", *([f"data.root={tmp_path}"] if option == "image_folder" else []))
    check_config(cfg)
    with execution_whitelist(EXECUTION_WHITELIST):
        model = build_model(cfg.model, (3, 32, 32), [str(i) for i in range(7)], "test")
        optimizer = instantiate(cfg.optimizer)(model.parameters())
        scheduler = instantiate(cfg.scheduler)(optimizer, total_steps=10)
        data = instantiate(cfg.data)
        trainer = instantiate(cfg.trainer)
        augment = instantiate(cfg.augment) if cfg.augment else None
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)  # the shape and classes it was built for
    assert model.features(torch.zeros(2, 3, 32, 32)).ndim == 2
    if augment is not None:  # whole uint8 batches, their shape kept
        assert augment(torch.zeros(5, 3, 32, 32, dtype=torch.uint8)).shape == (5, 3, 32, 32)
    assert scheduler.total_steps == 10 and scheduler.optimizer is optimizer
    assert data.batch_size == cfg.data.batch_size and trainer.max_epochs == cfg.trainer.max_epochs


def test_lenet5_is_the_tutorials_variant():
    model = build_model(compose().model, (1, 28, 28), [str(i) for i in range(10)], "test")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {
        "conv1.weight": (6, 1, 5, 5),
        "conv1.bias": (6,),
        "conv2.weight": (16, 6, 5, 5),
        "conv2.bias": (16,),
        "fc1.weight": (120, 256),
        "fc1.bias": (120,),
        "fc2.weight": (84, 120),
        "fc2.bias": (84,),
        "fc3.weight": (10, 84),
        "fc3.bias": (10,),
    }


def test_overrides_reach_the_components():
    cfg = compose("optimizer=adam", "optimizer.lr=0.01", "model.fc1_features=60", "data.batch_size=32")
    model = build_model(cfg.model, (1, 28, 28), [str(i) for i in range(10)], "test")
    assert model.fc1.out_features == 60
    assert instantiate(cfg.optimizer)(model.parameters()).param_groups[0]["lr"] == 0.01


@pytest.mark.parametrize(
    "override,named",
    [
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1"),
        ("optimizer.lr=0", "optimizer.lr=0"),
        ("data.batch_size=0", "data.batch_size=0"),
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1"),
        ("optimizer.lr=fast", "optimizer.lr='fast'"),
        ("data.batch_size=1.5", "data.batch_size=1.5"),
        ("trainer.device=tpu", "trainer.device=tpu"),
        ("optimizer.lr=nan", "optimizer.lr=nan must be a finite number"),
        ("optimizer.lr=inf", "optimizer.lr=inf must be a finite number"),
        ("trainer.max_epochs=inf", "trainer.max_epochs=inf must be a finite number"),
        ("trainer.divergence_threshold=-1", "trainer.divergence_threshold=-1 must be greater than 0"),
    ],
)
def test_bad_values_are_named(override, named):
    with pytest.raises(UserError, match=named.replace(".", r"\.").replace("'", ".")):
        check_config(compose(override))


def test_untrusted_target_is_refused():
    cfg = compose("model._target_=os.system", "+model.command=touch /tmp/pwned")
    with execution_whitelist(EXECUTION_WHITELIST), pytest.raises(InstantiationException, match="whitelist"):
        instantiate(cfg.model)


@pytest.mark.parametrize(
    "args,message",
    [
        (("optimizer.lr=-1",), "optimizer.lr=-1 must be greater than 0"),
        (("model=vgg",), "Available options in 'model'"),
        (("optimizer.lrr=0.1",), "optimizer.lrr"),
        (("trainer.device=tpu",), "trainer.device=tpu is not one of"),
        (("model._target_=os.system", "+model.command=true"), "execution whitelist"),
    ],
)
def test_mistakes_are_one_paragraph(tmp_path, capsys, args, message):
    """Each mistake exits non-zero, names the problem, and shows no traceback."""
    assert main(*SMOKE, *args, tmp=tmp_path) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) <= 10, err


@pytest.mark.slow
def test_the_command_line_exits_with_one_paragraph(tmp_path):
    """The same through a real `python src/train.py`: exit status 2, the message on stderr, nothing else."""
    proc = train(*SMOKE, "optimizer.lr=nan", tmp=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "fashionlab: error: Bad config value: optimizer.lr=nan must be a finite number. Fix the override on the "
        "command line (or the YAML file under conf/) and run again."
    )


@pytest.mark.parametrize(
    "pruner,built",
    [
        ("successive_halving", "SuccessiveHalvingPruner"),
        ("median", "MedianPruner"),
        ("hyperband", "HyperbandPruner"),
        ("none", "NopPruner"),
    ],
)
def test_every_pruner_option_builds_its_optuna_pruner(pruner, built):
    import optuna

    from fashionlab.search.study import SEARCH_WHITELIST

    cfg = compose("hparams_search=lenet5_optuna", f"hydra/sweeper/pruner={pruner}", hydra=True)
    with execution_whitelist(SEARCH_WHITELIST):
        made = instantiate(cfg.hydra.sweeper.pruner)
    assert isinstance(made, optuna.pruners.BasePruner) and type(made).__name__ == built


def test_the_preset_composes_with_any_sampler_and_the_slurm_launcher():
    cfg = compose(
        "hparams_search=lenet5_optuna",
        "hydra/sweeper/sampler=grid",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        hydra=True,
    )
    sweeper, launcher = cfg.hydra.sweeper, cfg.hydra.launcher
    assert sweeper._target_.endswith("FashionlabOptunaSweeper") and sweeper.sampler.seed == 1234
    assert sweeper.pruner._target_ == "optuna.pruners.SuccessiveHalvingPruner" and sweeper.pruner.min_resource == 1
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert (launcher.timeout_min, launcher.cpus_per_task, launcher.gpus_per_node, launcher.array_parallelism) == (
        60,
        4,
        1,
        8,
    )
    assert cfg.hydra.sweep.dir.endswith("multirun/lenet5_optuna") and sweeper.storage.endswith("optuna.journal")
