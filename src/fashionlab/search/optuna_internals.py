"""Every use of Optuna's private API, in one place. Checked against optuna 5.0.0 (pinned in pyproject.toml).

The sweeper needs a few things Optuna keeps private: a study's storage and id (to set a trial's system
attributes, which have no public setter since Optuna 3, and to read one trial without copying the study), a
trial's id, opening a Trial object for a trial asked elsewhere (the job's side of a search), the heartbeat base
class (the journal file's heartbeats), and the journal file's lock and offsets (its torn-record repair).
`check()` says what no longer holds after an upgrade: tests/test_internals.py runs it, and every search runs it
before it starts, so that an upgrade is one paragraph, not an AttributeError in the middle of a trial.
"""

from __future__ import annotations

import copy
import functools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial

CHECKED = "5.0.0"
try:
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
    from optuna.storages.journal._file import get_lock_file
except ImportError as e:  # pragma: no cover - only after an upgrade
    raise ImportError(
        f"optuna {optuna.__version__} moved what fashionlab/search/optuna_internals.py imports ({e}); it was "
        f"checked against optuna {CHECKED}. Install that version (pip install optuna=={CHECKED}) or update the module."
    ) from None

__all__ = ["BaseHeartbeat", "get_lock_file", "is_heartbeat_enabled"]


def storage(study: optuna.Study) -> BaseStorage:
    return study._storage


def study_id(study: optuna.Study) -> int:
    return study._study_id


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    return trial._trial_id


def frozen(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> FrozenTrial:
    """The trial as stored now (one trial read, not the study's list)."""
    return study._storage.get_trial(trial._trial_id)


def trial_by_number(study: optuna.Study, number: int) -> FrozenTrial:
    return study._storage.get_trial(study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number))


def set_system_attr(study: optuna.Study, trial: optuna.Trial | FrozenTrial, key: str, value: Any) -> None:
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


def open_trial(study: optuna.Study, trial: FrozenTrial | int) -> optuna.Trial:
    """A Trial object for a trial that exists (asked by the sweeper, or found RUNNING): study.tell takes one."""
    return optuna.Trial(study, trial if isinstance(trial, int) else trial._trial_id)


def trial_id_of_number(study: optuna.Study, number: int) -> int:
    return study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)


def journal_lock(backend: JournalFileBackend) -> Any:
    return backend._lock


def journal_path(backend: JournalFileBackend) -> str:
    return backend._file_path


def journal_bytes_read(backend: JournalFileBackend) -> int:
    """How far into the file the records read so far reach (Optuna keeps each record's offset)."""
    return max(backend._log_number_offset.values())


class FirstObjective:
    """A multi-objective study as a pruner sees it. Optuna's pruners judge one objective (they read
    `study.direction`), and `Trial.report` refuses multi-objective trials (optuna #3450). The job records the
    first objective after each epoch as a trial attribute (study.CURVE_ATTR: not as intermediate values, which
    TPE's multi-objective sampling cannot rank), and asks the pruner with this view of the study: its first
    direction, and its trials with those values (`reported`) as their intermediate values. What a pruner reads of
    a study is Optuna's own affair: `direction`, `get_trials`, and `_storage` (successive halving keeps its rungs
    as system attributes). Successive halving and the median and percentile pruners work so; Hyperband, which
    builds studies of its own, is refused (checks.py)."""

    def __init__(self, study: optuna.Study, reported: Callable[[FrozenTrial], dict[int, float]]):
        self._study, self._storage, self._reported = study, study._storage, reported

    @property
    def direction(self) -> optuna.study.StudyDirection:
        return self._study.directions[0]

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[FrozenTrial]:
        return [first_objective(t, self._reported) for t in self._study.get_trials(deepcopy=False, states=states)]


def first_objective(trial: FrozenTrial, reported: Callable[[FrozenTrial], dict[int, float]]) -> FrozenTrial:
    """The trial with its first objective's values after each epoch as its intermediate values."""
    seen = copy.copy(trial)
    seen.intermediate_values = reported(trial)
    return seen


def check() -> list[str]:
    """What this module relies on and the installed Optuna no longer has; [] when all holds."""
    problems = []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "check.journal")
        backend = JournalFileBackend(path)
        study = optuna.create_study(storage=JournalStorage(backend))
        trial = study.ask()
        probes = {
            "Study._storage": lambda: storage(study),
            "Study._study_id": lambda: study_id(study),
            "Trial._trial_id": lambda: trial_id(trial),
            "FrozenTrial._trial_id": lambda: trial_id(study.trials[0]),
            "storage.get_trial_id_from_study_id_trial_number": lambda: trial_by_number(study, 0),
            "storage.set_trial_system_attr": lambda: set_system_attr(study, trial, "check", 1),
            "Trial(study, trial_id)": lambda: open_trial(study, study.trials[0]).number,
            "JournalFileBackend._lock": lambda: journal_lock(backend),
            "JournalFileBackend._file_path": lambda: journal_path(backend),
            "JournalFileBackend._log_number_offset": lambda: journal_bytes_read(backend),
            "storages._heartbeat.BaseHeartbeat.record_heartbeat": lambda: BaseHeartbeat.record_heartbeat,
            "pruners on a multi-objective study's first objective": _prune_first_objective,
        }
        for name, probe in probes.items():
            try:
                probe()
            except Exception as e:  # noqa: BLE001 - any failure is what the check is for
                problems.append(f"{name} ({type(e).__name__}: {e})")
        if not problems and frozen(study, trial).system_attrs.get("check") != 1:
            problems.append("storage.set_trial_system_attr no longer stores a system attribute")
    return problems


def _prune_first_objective() -> None:
    """Successive halving and the median pruner decide on a two-objective study through FirstObjective: the
    first trial goes on, the last, far below the others at epoch 1, is stopped."""
    for pruner in (optuna.pruners.SuccessiveHalvingPruner(min_resource=1), optuna.pruners.MedianPruner(0, 0)):
        study = optuna.create_study(directions=["maximize", "minimize"])
        curves: dict[int, dict[int, float]] = {}
        decisions = []
        reported = functools.partial(_curve, curves)
        for value in (0.9, 0.8, 0.1):
            t = study.ask()
            curves[t.number] = {1: value}
            view = FirstObjective(study, reported)
            decisions.append(pruner.prune(view, first_objective(frozen(study, t), reported)))  # type: ignore[arg-type]
            study.tell(t, [value, 1.0])
        if decisions[0] or not decisions[-1]:
            raise AssertionError(f"{type(pruner).__name__} decided {decisions} for values 0.9, 0.8, 0.1")


def _curve(curves: dict[int, dict[int, float]], trial: FrozenTrial) -> dict[int, float]:
    return curves.get(trial.number, {})


def upgrade_message(problems: list[str]) -> str:
    return (
        f"optuna {optuna.__version__} no longer has what fashionlab's sweeper uses of its private API: "
        f"{'; '.join(problems)}. fashionlab/search/optuna_internals.py was checked against optuna {CHECKED}: "
        f"install that version (pip install optuna=={CHECKED}), or update that module."
    )
