"""Configs compose and build; bad input fails early with a clear message; untrusted targets are refused."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import execution_whitelist, instantiate
from omegaconf import open_dict

from conftest import ROOT, SMOKE, train
from fashionlab.config import UserError, check_config
from fashionlab.hydra_setup import EXECUTION_WHITELIST, register_resolvers

register_resolvers()
GROUPS = {"model": ["lenet5", "mlp"], "optimizer": ["sgd", "adam", "adamw"], "data": ["fashion_mnist", "synthetic"]}


def cfg_with(*overrides):
    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = compose("train", overrides=list(overrides))
    with open_dict(cfg):  # what Hydra fills in for a real run
        cfg.logging.log_dir = "unused"
    return cfg


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_composes_and_builds(group, option):
    cfg = cfg_with(f"{group}={option}")
    check_config(cfg)
    with execution_whitelist(EXECUTION_WHITELIST):
        model = instantiate(cfg.model)
        optimizer = instantiate(cfg.optimizer)(model.parameters())
        scheduler = instantiate(cfg.scheduler)(optimizer, total_steps=10)
        data = instantiate(cfg.data)
        trainer = instantiate(cfg.trainer)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert model.features(torch.zeros(2, 1, 28, 28)).ndim == 2
    assert scheduler.total_steps == 10 and scheduler.optimizer is optimizer
    assert data.batch_size == cfg.data.batch_size and trainer.max_epochs == cfg.trainer.max_epochs


def test_lenet5_is_the_tutorials_variant():
    model = instantiate(cfg_with().model)
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
    cfg = cfg_with("optimizer=adam", "optimizer.lr=0.01", "model.fc1_features=60", "data.batch_size=32")
    model = instantiate(cfg.model)
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
    ],
)
def test_bad_values_are_named(override, named):
    with pytest.raises(UserError, match=named.replace(".", r"\.").replace("'", ".")):
        check_config(cfg_with(override))


def test_untrusted_target_is_refused():
    cfg = cfg_with("model._target_=os.system", "+model.command=touch /tmp/pwned")
    with execution_whitelist(EXECUTION_WHITELIST), pytest.raises(InstantiationException, match="whitelist"):
        instantiate(cfg.model)


@pytest.mark.slow
def test_cli_errors_are_one_paragraph(tmp_path):
    """Through the real command line: each mistake exits non-zero, names the problem, and shows no traceback."""
    cases = {
        ("optimizer.lr=-1",): "optimizer.lr=-1 must be greater than 0",
        ("model=resnet",): "Available options in 'model'",
        ("optimizer.lrr=0.1",): "optimizer.lrr",
        ("trainer.device=cuda",) if not torch.cuda.is_available() else ("trainer.device=tpu",): "trainer.device=",
        ("model._target_=os.system", "+model.command=true"): "execution whitelist",
    }
    for args, message in cases.items():
        proc = train(*SMOKE, *args, tmp=tmp_path, check=False)
        assert proc.returncode != 0, args
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) <= 10, (args, proc.stderr)


def hydra_cfg(*overrides):
    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        return compose("train", overrides=["hparams_search=lenet5_optuna", *overrides], return_hydra_config=True)


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

    from fashionlab.search import SEARCH_WHITELIST

    cfg = hydra_cfg(f"hydra/sweeper/pruner={pruner}")
    with execution_whitelist(SEARCH_WHITELIST):
        made = instantiate(cfg.hydra.sweeper.pruner)
    assert isinstance(made, optuna.pruners.BasePruner) and type(made).__name__ == built


def test_the_preset_composes_with_any_sampler_and_the_slurm_launcher():
    cfg = hydra_cfg("hydra/sweeper/sampler=grid", "hydra/launcher=slurm", "hydra.launcher.partition=gpu")
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
