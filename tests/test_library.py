"""The library's small parts, in-process and fast: progress, the record, the leaderboard, the study's storage."""

from __future__ import annotations

import time

import optuna
import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose
from fashionlab import files, record
from fashionlab.config import UserError
from fashionlab.leaderboard.table import leaderboard
from fashionlab.run_state import RunState, is_better
from fashionlab.runs import best_so_far, differing_keys, ranked
from fashionlab.search.journal import HEARTBEAT_ATTR, JournalFileStorage
from fashionlab.search.storage import fail_stale_trials, open_storage
from fashionlab.status import Status


def test_is_better_by_mode_and_never_for_missing_values():
    assert is_better(0.9, 0.8, "max") and not is_better(0.8, 0.9, "max")
    assert is_better(0.1, 0.2, "min") and not is_better(0.2, 0.1, "min")
    assert is_better(0.5, None, "max") and is_better(0.5, float("nan"), "min")
    assert not is_better(None, 0.5, "max") and not is_better(float("nan"), 0.5, "max")


def test_progress_round_trips_through_a_weights_only_checkpoint(tmp_path):
    p = RunState(total_steps=100, model_target="fashionlab.models.LeNet5", epoch=2, step=40, images=5120)
    p.metrics["val/acc"] = 0.8
    assert p.update_best(p.metrics, "val/acc", "max") and not p.update_best({"val/acc": 0.7}, "val/acc", "max")
    torch.save({"progress": p.state_dict()}, tmp_path / "ckpt.pt")
    again = RunState.from_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["progress"])
    assert again == p and again.best.value == 0.8 and again.best.epoch == 2


def test_progress_reads_checkpoints_with_fields_it_no_longer_has_or_not_yet_had():
    older = {
        "epoch": 1,
        "batch": 0,
        "step": 10,
        "images": 1280,
        "best": {"value": 0.5, "epoch": 1, "step": 10},
        "metrics": {"val/acc": 0.5},
        "train_time_s": 1.0,
        "total_steps": 40,
        "model_target": "fashionlab.models.LeNet5",
        "retired_field": "dropped",
    }  # no epoch_time_s yet
    p = RunState.from_state_dict(older)
    assert p.step == 10 and p.best.value == 0.5 and p.images_per_s == 1280
    assert p.epoch_time_s == 0.0 and "retired_field" not in p.state_dict()


@pytest.mark.parametrize(
    "text,shown",
    [
        (
            "postgresql+psycopg2://user:hunter2@db.example.org:5432/studies",
            "postgresql+psycopg2://user:***@db.example.org:5432/studies",
        ),
        ("storage=mysql://root:p%40ss@10.0.0.1/x more", "storage=mysql://root:***@10.0.0.1/x more"),
        ("host=db user=me password=hunter2 dbname=x", "host=db user=me password=*** dbname=x"),
        (
            "postgresql://user@host/db and sqlite:///multirun/x.db",
            "postgresql://user@host/db and sqlite:///multirun/x.db",
        ),
    ],
)
def test_redact_masks_passwords_and_nothing_else(text, shown):
    assert files.redact(text) == shown


def hydra_view(*overrides):
    """A job's config and HydraConfig as Hydra would make them for `overrides` (without running a job)."""
    cfg = compose(*overrides, hydra=True)
    hc = cfg.hydra
    OmegaConf.set_struct(cfg, False)
    task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    return task, hc


def test_hyperparameters_are_what_the_run_chose():
    cfg, hc = hydra_view(
        "model=mlp",
        "optimizer.lr=0.01",
        "trainer.device=cpu",
        "paths.output_dir=/x",
        "logging.embedding_samples=5",
        "+data.extra=[1,2]",
    )
    chosen = record.hparams(cfg, hc)
    assert chosen == {
        "data": "fashion_mnist",
        "model": "mlp",
        "augment": "none",
        "loss": "cross_entropy",
        "optimizer": "sgd",
        "scheduler": "onecycle",
        "trainer": "default",
        "optimizer.lr": 0.01,
        "data.extra": [1, 2],
    }
    searched = record.hparams(cfg, hc, searched=["optimizer.lr"])
    assert list(searched)[0] == "optimizer.lr"
    assert record.tensorboard_hparams(chosen, Status.PRUNED)["status"] == "pruned"
    assert record.tensorboard_hparams(chosen, Status.COMPLETED)["data.extra"] == "[1, 2]"


def run(status, value, trial, **hparams):
    return {
        "status": status,
        "objective": {"metric": "val/acc", "mode": "max", "value": value},
        "trial": trial,
        "job": {"num": 0},
        "hparams": hparams,
        "epochs": 4,
        "max_epochs": 4,
        "wall_time_s": 1.0,
        "name": f"{trial:03d}",
        "test/acc": value,
    }


def test_the_leaderboard_ranks_completed_then_pruned_then_failed():
    runs = [
        run("pruned", 0.95, 0, lr=0.1),
        run("completed", 0.80, 1, lr=0.2),
        run("diverged", None, 2, lr=9.0),
        run("completed", 0.85, 3, lr=0.3),
        run("pruned", 0.60, 4, lr=0.4),
    ]
    assert [r["trial"] for r in ranked(runs)] == [3, 1, 0, 4, 2]
    best = best_so_far(runs, "max")
    assert [round(b, 2) if b == b else None for b in best] == [None, 0.8, 0.8, 0.85, 0.85]  # pruned never counts
    table = leaderboard(runs).splitlines()
    assert table[0].split()[:3] == ["#", "run", "lr"] and table[2].split()[-1] == "completed"
    assert table[4].split()[1] == "0" and table[4].split()[-1] == "pruned"


def test_differing_keys_keep_the_searched_order():
    runs = [
        {"hparams": {"lr": 0.1, "bs": 64, "model": "lenet5"}},
        {"hparams": {"lr": 0.2, "bs": 32, "model": "lenet5"}},
    ]
    assert differing_keys(runs) == ["lr", "bs"]


def test_a_journal_study_fails_a_trial_whose_heartbeat_stopped(tmp_path):
    storage = open_storage(str(tmp_path / "deep" / "study.journal"), heartbeat_interval=1, grace_period=1)
    assert isinstance(storage, JournalFileStorage) and (tmp_path / "deep" / "study.journal").exists()
    study = optuna.create_study(study_name="s", storage=storage)
    alive, dead, never = study.ask(), study.ask(), study.ask()
    storage.record_heartbeat(dead._trial_id)
    time.sleep(1.5)
    storage.record_heartbeat(alive._trial_id)
    failed = fail_stale_trials(study)
    assert [t.number for t in failed] == [dead.number]
    states = {t.number: t.state for t in study.trials}
    assert states[alive.number] == states[never.number] == optuna.trial.TrialState.RUNNING
    assert HEARTBEAT_ATTR in study.trials[alive.number].system_attrs


def test_a_bad_storage_url_is_one_error_with_the_password_masked():
    with pytest.raises(UserError) as e:
        open_storage("postgresql+psycopg2://me:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in str(e.value) and "me:***@127.0.0.1:1/db" in str(e.value)


def test_a_sqlite_url_still_works_and_its_folder_is_made(tmp_path):
    url = f"sqlite:///{tmp_path}/new/folder/study.db"
    study = optuna.create_study(study_name="s", storage=open_storage(url, heartbeat_interval=1, grace_period=2))
    study.tell(study.ask(), 0.5)
    assert optuna.load_study(study_name="s", storage=url).best_value == 0.5
