"""The search's rules as functions of a study and its settings, on studies made by hand (optuna.trial.create_trial),
as Optuna tests its own: budgets, the failure budget, enqueue and warm-start checks, which trials confirmation
takes and the jobs it makes, an outcome's state, surplus trials. No training: milliseconds each."""

from __future__ import annotations

import datetime
import json
import signal
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from fashionlab.config import UserError
from fashionlab.files import DiskFull
from fashionlab.search import CONFIRMS_ENV, confirmation, tell
from fashionlab.search.budgets import over_failure_budget, why_spent
from fashionlab.search.checks import check_fits, fits
from fashionlab.search.preemption import EXIT_REQUEUED, after_interrupt
from fashionlab.search.study import CONTINUES_ATTR, FAILURE_ATTR, IMPORTED_ATTR, count_trials
from fashionlab.search.warm_start import trial_of_run
from fashionlab.status import Outcome, Status

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {
    "optimizer": CategoricalDistribution(["sgd", "adamw"]),
    "optimizer.lr": FloatDistribution(0.0003, 0.3, log=True),
    "data.batch_size": CategoricalDistribution([64, 128, 256]),
    "model.depth": IntDistribution(8, 20, step=6),
}
T0 = datetime.datetime(2026, 12, 1, 12, 0, 0)


def trial(
    number: int, state: TrialState = TrialState.COMPLETE, value: float | None = None, **system
) -> optuna.trial.FrozenTrial:
    """A finished trial `number` minutes after T0, with its number and system attributes."""
    t = create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params={"optimizer": "sgd"},
        distributions={"optimizer": SPACE["optimizer"]},
        system_attrs=system,
    )
    t.number = number
    t.datetime_start = T0 + datetime.timedelta(minutes=number)
    t.datetime_complete = None if state == TrialState.RUNNING else t.datetime_start + datetime.timedelta(seconds=30)
    return t


def test_the_failure_budget_is_a_share_of_n_trials():
    assert over_failure_budget(2, 4, 0.5, "multirun/s") is None
    said = over_failure_budget(3, 4, 0.5, "multirun/s")
    assert said.startswith("The search stopped: 3 of its 4 trials failed, more than hydra.sweeper.max_failure_rate=0.5")
    assert over_failure_budget(1, 20, 0.0, "x") is not None and over_failure_budget(0, 20, 0.0, "x") is None


def test_timeout_counts_this_workers_time():
    assert why_spent([], True, 9.9, "val/acc", timeout=10) is None
    assert why_spent([], True, 10.0, "val/acc", timeout=10) == "hydra.sweeper.timeout=10 s reached (10s elapsed)"


@pytest.mark.parametrize(
    "maximize, target, stops", [(True, 0.8, True), (True, 0.81, False), (False, 0.5, True), (False, 0.49, False)]
)
def test_target_is_reached_by_the_best_completed_trial_in_the_studys_direction(maximize, target, stops):
    trials = [trial(0, value=0.5), trial(1, value=0.8), trial(2, TrialState.PRUNED)]
    said = why_spent(trials, maximize, 0, "val/acc", target=target)
    best = 1 if maximize else 0
    assert (
        said == f"trial {best} reached the target (hydra.sweeper.target={target:g}): val/acc {trials[best].value:.4f}"
    ) is stops
    assert stops or said is None


def test_patience_counts_finished_trials_since_the_best_and_not_interrupted_or_lost_ones():
    trials = [
        trial(0, value=0.5),
        trial(1, value=0.9),  # the best
        trial(2, TrialState.PRUNED),
        trial(3, TrialState.FAIL, **{FAILURE_ATTR: "diverged"}),  # its own failure: counts
        trial(4, TrialState.FAIL, **{FAILURE_ATTR: "interrupted"}),  # not the trial's doing: does not count
        trial(5, TrialState.FAIL, **{FAILURE_ATTR: "lost"}),
        trial(6, TrialState.RUNNING),
    ]
    assert why_spent(trials, True, 0, "val/acc", patience=3) is None
    said = why_spent([*trials, trial(7, value=0.85)], True, 0, "val/acc", patience=3)
    assert said == (
        "3 finished trials in a row brought no better one since trial 1 (val/acc 0.9000) (hydra.sweeper.patience=3)"
    )


def test_what_counts_towards_n_trials():
    trials = [
        trial(0, value=0.5),
        trial(1, TrialState.PRUNED),
        trial(2, TrialState.FAIL, **{FAILURE_ATTR: "failed"}),
        trial(3, TrialState.FAIL, **{FAILURE_ATTR: "interrupted"}),
        trial(4, TrialState.FAIL, **{FAILURE_ATTR: tell.NOT_NEEDED}),
        trial(5, TrialState.RUNNING),
        trial(6, value=0.7, **{IMPORTED_ATTR: "/runs/a"}),  # a warm start: the study did not train it
        trial(7, TrialState.WAITING),
    ]
    assert count_trials(trials) == (4, 3, 1)  # claimed (done + running), done, failed by themselves
    assert count_trials(trials, below=2) == (2, 2, 0)
    assert tell.surplus(trials, 8, 4) and not tell.surplus(trials, 8, 5)
    assert not tell.surplus(trials, 3, 4)  # trials 0-2 were there first: trial 3 is within n_trials


@pytest.mark.parametrize(
    "distribution, good, bad",
    [
        (SPACE["optimizer"], ["sgd", "adamw"], ["adam", 1, None]),
        (SPACE["optimizer.lr"], [0.0003, 0.01, 0.3], [0.5, 0.0, -1, "0.01", float("nan"), True]),
        (SPACE["data.batch_size"], [64, 256], [32, "64"]),
        (SPACE["model.depth"], [8, 14, 20], [10, 26, 14.5]),
    ],
)
def test_a_value_fits_the_space_as_optuna_would_draw_it(distribution, good, bad):
    assert all(fits(distribution, v) for v in good) and not any(fits(distribution, v) for v in bad)


def test_queued_sets_must_name_searched_keys_with_values_inside_the_space():
    check_fits({"optimizer": "sgd", "optimizer.lr": 0.01}, SPACE, "hydra.sweeper.enqueue[0]")
    with pytest.raises(UserError, match=r"enqueue\[0\] sets optimizer.momentum, which the search does not search"):
        check_fits({"optimizer.momentum": 0.9}, SPACE, "hydra.sweeper.enqueue[0]")
    with pytest.raises(UserError, match=r"enqueue\[1\]: optimizer.lr=5.0 is outside its search space"):
        check_fits({"optimizer.lr": 5.0}, SPACE, "hydra.sweeper.enqueue[1]")


def run(tmp_path: Path, status: str = "completed", metric: str = "val/acc", **hparams) -> dict:
    folder = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    chosen = {"optimizer": "adamw", "optimizer.lr": 0.01, "data.batch_size": 128, "model.depth": 14, **hparams}
    return {"dir": folder, "status": status, "objective": {"metric": metric, "value": 0.9}, "hparams": chosen}


def test_a_finished_run_becomes_a_trial_only_if_it_fits_the_search(tmp_path):
    t = trial_of_run(run(tmp_path), SPACE, "val/acc")
    assert t.state == TrialState.COMPLETE and t.value == 0.9 and t.params["optimizer.lr"] == 0.01
    assert t.system_attrs[IMPORTED_ATTR] == t.user_attrs["imported_from"] == str((tmp_path / "run0").resolve())
    assert trial_of_run(run(tmp_path, **{"optimizer.lr": 0.5}), SPACE, "val/acc") is None  # outside the space
    assert trial_of_run(run(tmp_path, metric="val/loss"), SPACE, "val/acc") is None  # another objective
    assert trial_of_run(run(tmp_path, status="pruned"), SPACE, "val/acc") is None
    partial = run(tmp_path)
    del partial["hparams"]["model.depth"]  # not chosen, and no saved config to read it from
    assert trial_of_run(partial, SPACE, "val/acc") is None


def test_confirmation_takes_the_best_completed_trials_in_the_studys_direction():
    trials = [trial(0, value=0.7), trial(1, TrialState.PRUNED), trial(2, value=0.9), trial(3, value=0.8)]
    assert [t.number for t in confirmation.top_trials(trials, 2, maximize=True)] == [2, 3]
    assert [t.number for t in confirmation.top_trials(trials, 2, maximize=False)] == [0, 3]
    assert confirmation.top_trials([trial(0, TrialState.PRUNED)], 3, True) == []


def test_confirmation_jobs_repeat_each_trial_with_new_seeds_skip_what_is_done_and_resume_what_stopped(tmp_path):
    top = [trial(2, value=0.9), trial(3, value=0.8)]
    for t in top:
        t.user_attrs["run_dir"] = str(tmp_path / f"{t.number:03d}_lr=0.01")
    done = tmp_path / "confirm" / "002_lr=0.01" / "seed=1"  # completed: not trained again
    done.mkdir(parents=True)
    (done / "metrics.json").write_text(json.dumps({"status": "completed"}))
    stopped = tmp_path / "confirm" / "003_lr=0.01" / "seed=2"  # interrupted: continued from its checkpoint
    (stopped / "checkpoints").mkdir(parents=True)
    (stopped / "checkpoints" / "last.pt").write_bytes(b"")
    fixed = {"trainer.max_epochs": 4, "seed": 0}
    jobs, skipped = confirmation.jobs(
        top, [1, 2], tmp_path, fixed, ["~scheduler", "data.split_seed=7"], split_seed=True
    )
    assert skipped == 1 and len(jobs) == 3
    first = jobs[0]
    assert first[:2] == ("optimizer=sgd", "trainer.max_epochs=4")  # the trial's parameters, then the fixed ones
    assert "~scheduler" in first and "data.split_seed=7" not in first and "seed=0" not in first
    assert first[-3:] == (
        "data.split_seed=2",
        "hydra.sweep.subdir='confirm/002_lr=0.01/seed=2'",
        f"++hydra.job.env_set.{CONFIRMS_ENV}=2",
    )
    assert jobs[2][-1] == f"resume='{stopped}'" and "seed=2" in jobs[2]
    same_split, _ = confirmation.jobs(top[:1], [1], tmp_path / "other", {}, [], split_seed=False)
    assert not any(o.startswith("data.split_seed") for o in same_split[0])


@pytest.mark.parametrize(
    "outcome, multi, told",
    [
        (Outcome(Status.COMPLETED, 0.9, 4, values=(0.9, 1000.0)), False, (TrialState.COMPLETE, 0.9, None)),
        (Outcome(Status.COMPLETED, 0.9, 4, values=(0.9, 1000.0)), True, (TrialState.COMPLETE, [0.9, 1000.0], None)),
        (Outcome(Status.PRUNED, 0.7, 1), False, (TrialState.PRUNED, None, None)),
        (Outcome(Status.DIVERGED, error="train/loss=nan"), False, (TrialState.FAIL, None, "diverged")),
        (Outcome(Status.FAILED, error="ValueError"), False, (TrialState.FAIL, None, "failed")),
        (Outcome(Status.INTERRUPTED, error="signal 2"), False, (TrialState.FAIL, None, "interrupted")),
    ],
)
def test_each_outcome_has_its_state(outcome, multi, told):
    assert tell.state_of(outcome, multi) == told


def asked(study: optuna.Study) -> optuna.Trial:
    t = study.ask({"optimizer": SPACE["optimizer"]})
    t.set_user_attr("run_dir", f"/runs/{t.number}")
    return t


def waiting(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(TrialState.WAITING,))


def test_telling_an_interrupted_or_lost_trial_queues_it_again_and_a_second_loss_is_its_own_failure():
    study = optuna.create_study(direction="maximize")
    done = asked(study)
    assert tell.tell(study, done, lambda: Outcome(Status.COMPLETED, 0.8, 4), False, 1) == (TrialState.COMPLETE, 0.8)
    assert tell.tell(study, asked(study), lambda: 0.6, False, 1) == (TrialState.COMPLETE, 0.6)  # a plain number

    interrupted = asked(study)
    tell.tell(study, interrupted, lambda: Outcome(Status.INTERRUPTED, error="signal 15"), False, 1)
    (retry,) = waiting(study)
    assert retry.user_attrs[CONTINUES_ATTR] == interrupted.number
    assert retry.system_attrs["fixed_params"] == interrupted.params  # the same parameters, drawn again

    def died():
        raise RuntimeError("A worker process managed by the executor was unexpectedly terminated.")

    lost = study.ask()  # the retry, asked: its job dies
    assert tell.tell(study, lost, died, False, 1) == (TrialState.FAIL, None)
    frozen = study.trials[lost.number]
    assert (
        frozen.system_attrs[FAILURE_ATTR] == "lost"
        and "unexpectedly terminated" in frozen.system_attrs[tell.ERROR_ATTR]
    )
    (again,) = waiting(study)
    assert again.user_attrs[tell.LOST_ATTR] == 1 and again.user_attrs[CONTINUES_ATTR] == lost.number

    twice = study.ask()  # lost again: not retried for ever
    tell.tell(study, twice, died, False, 1)
    assert study.trials[twice.number].system_attrs[FAILURE_ATTR] == "failed" and waiting(study) == []
    assert count_trials(study.trials) == (3, 3, 1)  # two completed, one failed by itself; the rest replaced

    stopping = asked(study)  # the sweeper was stopping: whatever the job did, it was interrupted
    tell.tell(study, stopping, died, True, 1)
    assert study.trials[stopping.number].system_attrs[FAILURE_ATTR] == "interrupted" and len(waiting(study)) == 1


def test_a_full_disk_fails_the_trial_and_is_raised_to_stop_the_worker():
    study = optuna.create_study()
    t = asked(study)

    def full():
        raise DiskFull("The disk holding /runs is full")

    with pytest.raises(DiskFull):
        tell.tell(study, t, full, False, 1)
    frozen = study.trials[t.number]
    assert frozen.state == TrialState.FAIL and frozen.system_attrs[FAILURE_ATTR].startswith("disk full: ")
    assert waiting(study) == []


def test_a_trial_told_twice_keeps_its_first_ending():
    study = optuna.create_study()
    t = asked(study)
    tell.finish(study, t, TrialState.FAIL)  # another worker failed it as stale meanwhile
    assert tell.tell(study, t, lambda: Outcome(Status.COMPLETED, 0.9, 4), False, 1) == (TrialState.FAIL, None)


@pytest.mark.parametrize(
    "restarts, bound, signum, what",
    [
        (0, 3, signal.SIGUSR2, "requeued"),
        (3, 3, signal.SIGUSR2, "failed"),
        (1, 3, signal.SIGTERM, "exit"),
        (0, 3, signal.SIGINT, "interrupted"),
    ],
)
def test_a_slurm_trial_job_answers_each_signal_after_its_checkpoint(monkeypatch, restarts, bound, signum, what):
    """The job's side (search/preemption.py), without a cluster: USR2 goes to submitit's handler below the bound
    and fails the trial past it; SIGTERM exits without a result; SIGINT is an interrupted trial."""
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.setenv("SLURM_RESTART_COUNT", str(restarts))
    handed = []
    monkeypatch.setattr(signal, "getsignal", lambda s: lambda *a: handed.append(s))  # submitit's handler
    hc = OmegaConf.create({"launcher": {"max_num_timeout": bound}})
    interrupted = Outcome(Status.INTERRUPTED, epochs=2, error="interrupted by signal")
    if what == "exit":
        with pytest.raises(SystemExit) as e:
            after_interrupt(signum, hc, interrupted)
        assert e.value.code == EXIT_REQUEUED and handed == []
        return
    decided = after_interrupt(signum, hc, interrupted)
    if what == "requeued":
        assert handed == [signal.SIGUSR2]
    elif what == "failed":
        assert decided.status == Status.FAILED and handed == []
        assert "4 times, and hydra.launcher.max_num_timeout=3 requeues are allowed" in decided.error
    else:
        assert decided is interrupted and handed == []
