"""What `src/train.py` sets up before Hydra starts: trusted targets, resolvers, and `resume=`.

Kept free of torch so that `python src/train.py --help` answers in well under a second of imports.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from fashionlab.status import fail

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


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("unique_dir"):
        OmegaConf.register_resolver("unique_dir", unique_dir, use_cache=True)


# Hydra's command-line flags that take a value as the next word.
VALUE_FLAGS = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}


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
        fail("resume= continues one run; it cannot be combined with -m/--multirun.")
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        fail(
            f"resume={run_dir} is not a fashionlab run directory (there is no {saved}). Pass the folder "
            f"of the run to continue, e.g. resume=outputs/2026-01-31/12-00-00."
        )
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        fail(
            f"resume={run_dir}: the run has no checkpoint (checkpoints/last.pt): it stopped before finishing "
            f"its first epoch. Start a new run instead."
        )

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
    old = [
        o
        for o in (yaml.safe_load(saved.read_text()) or [])
        if key(o) != "resume" and key(o) not in {key(n) for n in new}
    ]
    quoted = str(run_dir).replace("'", "\\'")
    return [argv[0], *flags, *old, *new, f"resume='{quoted}'", f"hydra.run.dir='{quoted}'", "hydra.output_subdir=null"]
