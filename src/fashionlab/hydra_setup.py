"""What `src/train.py` sets up before Hydra starts: trusted targets, resolvers, and `resume=`.

Kept free of torch so that `python src/train.py --help` answers in well under a second of imports.
"""
from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import yaml
from omegaconf import OmegaConf

# `instantiate` builds only these (Hydra 1.4's execution whitelist): a config naming `os.system`
# as a _target_ is refused. `torch.optim.*` also covers the schedulers in torch.optim.lr_scheduler.
EXECUTION_WHITELIST = (
    "fashionlab.*",
    "torch.optim.*",
    "torch.nn.*",
    "logging.*",  # Hydra's own job logging config builds logging handlers and formatters
)

_claimed: dict[str, str] = {}


def unique_dir(path: str) -> str:
    """`path`, or `path-2`, `path-3`... : the first that this process could create.

    mkdir is atomic, so two runs or sweeps started in the same second get different directories.
    """
    if path not in _claimed:
        candidate, n = path, 1
        while True:
            try:
                Path(candidate).mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:
                n += 1
                candidate = f"{path}-{n}"
        _claimed[path] = candidate
    return _claimed[path]


def make_dir(path: str) -> str:
    """Create `path` and return it (the Optuna SQLite file's folder must exist before Hydra makes any)."""
    Path(path).mkdir(parents=True, exist_ok=True)
    return path


def parallel_jobs(n_jobs) -> int:
    """The launcher's n_jobs as a count (joblib's -1 means one per core): the trials to ask Optuna for at once."""
    n = int(n_jobs)
    return n if n > 0 else max(1, (os.cpu_count() or 1) + 1 + n)


def study_seed(seed: int, storage: str | None, study_name: str) -> int:
    """`seed` plus the trials the stored study already has.

    TPE's first trials are random draws: with the same seed, a continued study would repeat them.
    """
    if not storage:
        return int(seed)
    import optuna

    try:
        return int(seed) + len(optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False))
    except KeyError:  # no such study yet
        return int(seed)


def register_resolvers() -> None:
    for name, fn in (("unique_dir", unique_dir), ("mkdir", make_dir), ("parallel_jobs", parallel_jobs),
                     ("study_seed", study_seed)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_resolver(name, fn, use_cache=True)


def _fail(message: str) -> None:
    print(f"fashionlab: error: {message}", file=sys.stderr)
    sys.exit(2)


# Hydra's command-line flags that take a value as the next word.
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
               "--experimental-rerun"}


def prepare_argv(argv: list[str]) -> list[str]:
    """Expand `resume=RUN_DIR` into the run's original overrides plus the new ones, in its own directory.

    Done before Hydra starts because Hydra rewrites RUN_DIR/.hydra/ before the job runs; here we tell it
    not to (hydra.output_subdir=null), and the job records the config itself once the checkpoint loads.
    """
    resume = [a for a in argv[1:] if a.startswith("resume=")]
    if not resume:
        return argv
    run_dir = Path(resume[-1].split("=", 1)[1]).expanduser().resolve()
    if any(a in ("-m", "--multirun") for a in argv):
        _fail("resume= continues one run; it cannot be combined with -m/--multirun.")
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        _fail(f"resume={run_dir} is not a fashionlab run directory (there is no {saved}). Pass the folder "
              f"of the run to continue, e.g. resume=outputs/2026-01-31/12-00-00.")
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        _fail(f"resume={run_dir}: the run has no checkpoint (checkpoints/last.pt): it stopped before finishing "
              f"its first epoch. Start a new run instead.")

    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~")

    flags, new, args = [], [], iter(argv[1:])
    for a in args:
        if a in VALUE_FLAGS:  # the next word is the flag's value (`--cfg job`)
            flags += [a, *itertools.islice(args, 1)]
        elif a.startswith("-"):
            flags.append(a)
        elif not a.startswith("resume="):
            new.append(a)
    old = [o for o in (yaml.safe_load(saved.read_text()) or [])
           if key(o) != "resume" and key(o) not in {key(n) for n in new}]
    quoted = str(run_dir).replace("'", "\\'")
    return [argv[0], *flags, *old, *new, f"resume='{quoted}'", f"hydra.run.dir='{quoted}'",
            "hydra.output_subdir=null"]
