"""Shared helpers: tiny Fashion-MNIST-format IDX files, composing configs, running src/train.py as a user would
(in a new process, or in this one: `main`), callbacks that act at an exact step, reading back what runs wrote
(metrics.json, TensorBoard events, the study), a real tensorboard server, a throwaway PostgreSQL."""

from __future__ import annotations

import contextlib
import functools
import gzip
import importlib.util
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

# One torch thread in each test process and in every process a test starts: pytest-xdist runs two test processes on
# two cores, and torch's default (a thread per core each) oversubscribes them; OpenMP's threads then spin, waiting
# for each other, and the suite burns its CPU time in that wait.
os.environ["OMP_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fashionlab import signals  # noqa: E402
from fashionlab.callbacks import Callback  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SMOKE = ("experiment=smoke",)  # a fast, offline configuration: synthetic data, one epoch, no progress bar
SEARCH = ("hparams_search=lenet5_optuna",)


def write_idx_gz(folder: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """Gzipped IDX files in Fashion-MNIST's format (as the Debian package ships them): learnable templates."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, (10, 28, 28))
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = np.clip(templates[labels] + rng.normal(0, 40, (n, 28, 28)), 0, 255).astype(np.uint8)
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + labels.tobytes())
    return folder


def compose(*overrides: str, hydra: bool = False):
    """The config `python src/train.py OVERRIDES` would run with (with Hydra's own node if hydra=True)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    from fashionlab.hydra_setup import register_resolvers

    register_resolvers()
    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = hydra_compose("train", overrides=list(overrides), return_hydra_config=hydra)
    if not hydra:
        with open_dict(cfg):  # what Hydra fills in for a real run
            cfg.logging.log_dir = "unused"
    return cfg


@functools.cache
def _entry(name: str):
    """src/NAME.py's task function under its own @hydra.main, with the config folder given absolutely."""
    import hydra

    spec = importlib.util.spec_from_file_location(name, ROOT / "src" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entry = hydra.main(
        config_path=str(ROOT / "conf"), config_name=name, execution_whitelist=module.EXECUTION_WHITELIST
    )(module.main.__wrapped__)
    return module, entry


def main(*args: str, tmp: Path, callbacks: Sequence = (), script: str = "train") -> int:
    """`python src/train.py ARGS` (or src/eval.py) in this process, without the start-up cost: its exit status,
    0 if it returned. `callbacks` are added to every trainer the run builds (e.g. StopAtStep)."""
    from fashionlab.hydra_setup import prepare_argv
    from fashionlab.training import Trainer

    setup = Trainer.setup

    def setup_with_callbacks(self, *a, **k):
        setup(self, *a, **k)
        self.callbacks.extend(callbacks)

    module, entry = _entry(script)
    try:
        argv = command(*args, tmp=tmp, script=f"src/{script}.py")[1:]
        argv = prepare_argv(argv) if script == "train" else argv  # resume= is expanded before Hydra starts
        if script == "eval":
            argv = module.split_argv(argv)  # as src/eval.py does before Hydra starts
        with mock.patch.object(sys, "argv", argv), mock.patch.object(Trainer, "setup", setup_with_callbacks):
            entry()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    return 0


class StopAtStep(Callback):
    """A trainer callback that raises the stop flag at one exact step, as SIGINT arriving there would."""

    def __init__(self, step: int, signum: int = signal.SIGINT):
        self.step, self.signum = step, signum

    def on_step_end(self, trainer) -> None:
        if trainer.state.step == self.step:
            trainer.stop_signal = self.signum
            signals.request(self.signum)  # as the trainer's handler does: a sweeper in this process stops too


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory) -> Path:
    return write_idx_gz(tmp_path_factory.mktemp("debian") / "fashion-mnist")


def command(*args: str, tmp: Path, script: str = "src/train.py") -> list[str]:
    """The command line of `script ARGS`; for src/train.py with its outputs under tmp (ARGS can move them)."""
    if script not in ("src/train.py", "src/eval.py"):
        return [sys.executable, str(ROOT / script), *args]
    return [
        sys.executable,
        str(ROOT / script),
        f"paths.output_dir={tmp}/outputs",
        f"paths.multirun_dir={tmp}/multirun",
        *args,
    ]


def environment(env: dict | None = None) -> dict:
    return {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}


def train(
    *args: str,
    tmp: Path,
    timeout: float = 120,
    check: bool = True,
    env: dict | None = None,
    script: str = "src/train.py",
) -> subprocess.CompletedProcess:
    """Run `python src/train.py ARGS` with its outputs under tmp; assert success unless check=False."""
    cmd = command(*args, tmp=tmp, script=script)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=environment(env))
    if check:
        assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def start(*args: str, tmp: Path, env: dict | None = None) -> subprocess.Popen:
    """`python src/train.py ARGS` in the background, output (text) in proc.stdout."""
    return subprocess.Popen(
        command(*args, tmp=tmp),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment(env),
    )


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("metrics.json"))


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def events(run_dir: Path, **guidance):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0, **guidance})
    acc.Reload()
    return acc


def journal(tmp: Path, name: str = "lenet5_optuna") -> Path:
    """Where the preset keeps study `name` (its folder under multirun/)."""
    return tmp / "multirun" / name / "optuna.journal"


def load_study(storage, name: str = "lenet5_optuna"):
    """The study, as a user would open it: a journal file path or a database URL."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if "://" not in str(storage):
        storage = JournalStorage(JournalFileBackend(str(storage)))
    return optuna.load_study(study_name=name, storage=storage)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def poll(read, done, timeout: float = 60, every: float = 0.3):
    """read() until done(value) (or the time is up); return the last value. Servers and studies take a moment to
    appear: until then read() may raise, which counts as not done."""
    deadline = time.time() + timeout
    while True:
        try:
            value = read()
        except Exception:  # noqa: BLE001 - not there yet (a server starting, a study not yet created)
            value = None
        if (value is not None and done(value)) or time.time() > deadline:
            return value
        time.sleep(every)


@contextlib.contextmanager
def server(args: list[str], ready: str, timeout: float = 60):
    """Start a web server (tensorboard, optuna-dashboard) on a free loopback port; yield its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [*args, "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                get(base + ready)
                break
            except OSError:
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def tensorboard(logdir: Path):
    return server([str(Path(sys.executable).parent / "tensorboard"), "--logdir", str(logdir)], "/data/plugins_listing")


def session_groups(base: str) -> list[dict]:
    """The HPARAMS table as the dashboard asks for it: one group per run."""
    body = {
        "experimentName": "",
        "startIndex": 0,
        "sliceSize": 100,
        "colParams": [],
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "aggregationType": "AGGREGATION_AVG",
    }
    return get(f"{base}/data/plugin/hparams/session_groups", body)["sessionGroups"]


class Postgres:
    """A throwaway PostgreSQL server on a loopback port that asks for a password (scram-sha-256)."""

    BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), default=Path("/nowhere"))
    USER, PASSWORD = "fashionlab", "s3cret-Pa55"

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="fashionlab-pg-"))
        self.dir.chmod(0o711)
        self.data, self.port = self.dir / "data", free_port()
        shutil.chown(self.dir, "postgres", "postgres")
        (self.dir / "pw").write_text(self.PASSWORD + "\n")
        shutil.chown(self.dir / "pw", "postgres")
        self._as_postgres(
            self.BIN / "initdb",
            "-D",
            self.data,
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        )
        self.start()
        self.psql(f"CREATE ROLE {self.USER} LOGIN PASSWORD '{self.PASSWORD}'")

    def _as_postgres(self, *args) -> subprocess.CompletedProcess:
        cmd = [str(a) for a in args]
        if os.geteuid() == 0:  # the server refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=self.dir)

    def start(self) -> None:
        self._as_postgres(
            self.BIN / "pg_ctl",
            "-D",
            self.data,
            "-l",
            self.dir / "log",
            "-w",
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )

    def stop(self) -> None:
        self._as_postgres(self.BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def psql(self, sql: str, db: str = "postgres") -> str:
        return self._as_postgres(
            self.BIN / "psql", "-h", self.dir, "-p", self.port, "-U", "postgres", "-d", db, "-tAc", sql
        ).stdout

    def database(self, name: str) -> str:
        """A fresh, empty database owned by the user; its URL without the password."""
        self.psql(f"CREATE DATABASE {name} OWNER {self.USER}")
        return f"postgresql+psycopg2://{self.USER}@127.0.0.1:{self.port}/{name}"

    def url(self, name: str) -> str:
        """The same URL with the password in it."""
        return self.database(name).replace(f"{self.USER}@", f"{self.USER}:{self.PASSWORD}@")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres():
    if not (Postgres.BIN / "initdb").exists():
        pytest.fail("PostgreSQL is not installed (apt-get install postgresql; .ci/run does this)")
    pg = Postgres()
    yield pg
    pg.close()


def pytest_collection_modifyitems(items: list) -> None:
    """The longest tests first (the SLURM cluster's, its 90-second time limit foremost), so that pytest-xdist's
    workers do not end with one of them alone: they are mostly waiting on SLURM's clock."""
    first = ("test_a_real_time_limit", "tests/test_slurm.py")
    items.sort(key=lambda item: next((i for i, f in enumerate(first) if f in item.nodeid), len(first)))
