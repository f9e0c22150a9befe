"""Trial files in an Optuna artifact store, so any host can build the whole study directory.

With ``--artifacts DIR_OR_URL`` every trial uploads its checkpoint and run files (the names in
:data:`RUN_FILES`) through :func:`optuna.artifacts.upload_artifact`, which links each file to the
trial (a ``artifacts:<id>`` system attribute holding the file name).  Readers find a trial's files
from the trial alone and fetch the ones missing locally.

* a directory (or ``file:///path``) → :class:`optuna.artifacts.FileSystemArtifactStore`: a path
  every host mounts (NFS, a cluster file system);
* ``s3://bucket[/prefix]`` → :class:`optuna.artifacts.Boto3ArtifactStore` (``tunelab[s3]``; an
  S3-compatible server through ``AWS_ENDPOINT_URL``).

Each study keeps its files under ``<store>/<study name>/``.  The store's URL is the study's
``artifacts`` user attribute, so every worker of the study uploads there without the flag.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

from tunelab.errors import UserError
from tunelab.results.attrs import STUDY

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = [
    "CHECKPOINT",
    "RUN_FILES",
    "StudyStore",
    "TrialUploads",
    "check_url",
    "fetch_file",
    "linked_files",
    "open_store",
    "restore_top",
    "restore_trials",
    "study_store",
    "upload_run",
]

log = logging.getLogger(__name__)

CHECKPOINT = "best_model.pt"
#: what a trial uploads from its run directory (those that exist): the checkpoint and the run files
RUN_FILES = (CHECKPOINT, "config.json", "metrics.jsonl", "summary.json", "traceback.txt")
_PREFIX = "artifacts:"  # Optuna's link from a trial to an artifact (optuna.artifacts._upload)
_S3_EXTRA = "pip install 'tunelab[s3]'"


def _refuse(url: str, why: str) -> UserError:
    return UserError(f"--artifacts {url}: {why}")


def _check_dir(url: str, path: Path, write: bool) -> str:
    if not path.is_dir():
        what = "is a file, not a directory" if path.exists() else "no such directory"
        raise _refuse(url, f"{what}; create it (a directory every host mounts) or fix the path")
    if write and not os.access(path, os.W_OK | os.X_OK):
        raise _refuse(url, "no permission to write there; choose a directory you can write to")
    return str(path.resolve())


def _s3_client() -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        return None
    return boto3.client("s3", config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2}))


def _check_s3(url: str) -> str:
    parts = urlsplit(url)
    if not parts.netloc:
        raise _refuse(url, "expected s3://BUCKET or s3://BUCKET/PREFIX")
    client = _s3_client()
    if client is None:
        raise _refuse(url, f"S3 needs boto3; install it: {_S3_EXTRA}")
    try:
        client.head_bucket(Bucket=parts.netloc)
    except Exception as exc:  # botocore: no credentials, no such bucket, endpoint unreachable
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise _refuse(
            url, f"cannot reach the bucket ({first}); check the bucket, AWS_ENDPOINT_URL and credentials"
        ) from None
    return url.rstrip("/")


def check_url(url: str, *, write: bool = False) -> str:
    """The store's canonical URL (an absolute path, or ``s3://...``); a bad or unreachable one is
    refused in one line.  Creates nothing."""
    text = url.strip()
    if text.startswith("s3://"):
        return _check_s3(text)
    if text.startswith("file://"):
        return _check_dir(url, Path(urlsplit(text).path), write)
    if "://" in text or not text:
        scheme = text.split("://")[0] or "(empty)"
        raise _refuse(
            url, f"'{scheme}' is not a store; use a directory every host mounts (or file:///path) or s3://BUCKET"
        )
    return _check_dir(url, Path(text).expanduser(), write)


class StudyStore:
    """One study's part of an artifact store (``<store>/<study>/``); an Optuna ``ArtifactStore``."""

    def __init__(self, url: str, study_name: str) -> None:
        self.url = url
        self.prefix = study_name.replace("/", "_") + "/"
        self._dir: Path | None = None
        if url.startswith("s3://"):
            from optuna.artifacts import Boto3ArtifactStore

            parts = urlsplit(url)
            self.prefix = f"{parts.path.strip('/')}/{self.prefix}".lstrip("/")
            self.inner: Any = Boto3ArtifactStore(parts.netloc, client=_s3_client())
        else:
            from optuna.artifacts import FileSystemArtifactStore

            self._dir = Path(url) / self.prefix
            self.inner = FileSystemArtifactStore(url)

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self.inner.open_reader(self.prefix + artifact_id)  # type: ignore[no-any-return]

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        if self._dir is not None:
            self._dir.mkdir(exist_ok=True)
        self.inner.write(self.prefix + artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self.inner.remove(self.prefix + artifact_id)


_OPEN: dict[tuple[str, str], StudyStore] = {}


def open_store(url: str, study_name: str, *, write: bool = False) -> StudyStore:
    """The store at ``url`` for study ``study_name`` (a bucket is checked once per process)."""
    key = (url, study_name)
    if key not in _OPEN or not url.startswith("s3://"):  # a directory is checked each time (a stat): it may go away
        _OPEN[key] = StudyStore(check_url(url, write=write), study_name)
    return _OPEN[key]


def study_store(study: optuna.Study, url: str | None = None, *, write: bool = False) -> StudyStore | None:
    """The store of ``study``: ``url`` if given (this host's path to it), else the study's own."""
    if url:
        return open_store(url, study.study_name, write=write)
    stored = study.user_attrs.get(STUDY.ARTIFACTS)
    if not stored:
        return None
    try:
        return open_store(stored, study.study_name, write=write)
    except UserError as exc:
        why = str(exc).split(": ", 1)[-1]
        raise UserError(
            f"study '{study.study_name}' keeps its files in {stored}, which this host cannot use ({why}); "
            "pass --artifacts with this host's path or URL to that store"
        ) from None


# --------------------------------------------------------------------------- writing


def upload_run(store: StudyStore, trial: optuna.Trial, run_dir: Path) -> list[str]:
    """Upload the run files of a running ``trial`` that exist and link them to it."""
    import optuna

    sent = []
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_file():
            optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial)
            sent.append(name)
    return sent


class TrialUploads:
    """``uploads(trial, run_dir)`` as a trial ends: its files go to the study's store, if it has one.

    ``url`` is this host's path to the store (``tunelab worker --artifacts``); without it, the study's
    ``artifacts`` attribute is read once, at the first trial.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        self._store: StudyStore | None = None
        self._looked = False

    def __call__(self, trial: optuna.Trial, run_dir: Path | None) -> None:
        if run_dir is None:
            return
        if not self._looked:
            self._store = study_store(trial.study, self.url, write=True)
            self._looked = True
        if self._store is None:
            return
        try:
            upload_run(self._store, trial, run_dir)
        except Exception as exc:  # noqa: BLE001  (the trial's own files are still here; it goes on)
            log.warning("trial %d: upload to %s failed (%s)", trial.number, self._store.url, exc)


# --------------------------------------------------------------------------- reading


def linked_files(trial: FrozenTrial) -> dict[str, str]:
    """File name → artifact id of the files linked to ``trial`` (the last upload of a name wins)."""
    out: dict[str, str] = {}
    for key, value in trial.system_attrs.items():
        if key.startswith(_PREFIX):
            meta = json.loads(value) if isinstance(value, str) else value
            out[str(meta["filename"])] = str(meta["artifact_id"])
    return out


def fetch_file(store: StudyStore, trial: FrozenTrial, name: str, dest: Path) -> bool:
    """Write ``trial``'s file ``name`` from the store to ``dest`` (atomically); False if it has none."""
    from optuna.artifacts.exceptions import ArtifactNotFound

    from tunelab.results.io import atomic_write

    artifact_id = linked_files(trial).get(name)
    if artifact_id is None:
        return False
    try:
        reader = store.open_reader(artifact_id)
    except ArtifactNotFound:
        log.warning("trial %d: %s is linked but missing from %s", trial.number, name, store.url)
        return False
    with reader:
        atomic_write(dest, lambda out: _copy(reader, out))
    return True


def _copy(src: IO[bytes], dst: IO[bytes]) -> None:
    while chunk := src.read(1 << 20):
        dst.write(chunk)


def restore_trials(store: StudyStore, trials: list[FrozenTrial], study_dir: Path, *, checkpoints: bool = False) -> int:
    """Fetch the run files missing under ``study_dir/<run_dir>/`` for ``trials``; returns how many.

    Checkpoints only with ``checkpoints`` (they are the large files)."""
    from tunelab.results.attrs import TRIAL

    fetched = 0
    for t in trials:
        run_dir = t.user_attrs.get(TRIAL.RUN_DIR)
        if not run_dir:
            continue
        for name in linked_files(t):
            if name not in RUN_FILES:  # only tunelab's own files, by their own names
                continue
            dest = study_dir / run_dir / name
            if (name != CHECKPOINT or checkpoints) and not dest.is_file():
                fetched += fetch_file(store, t, name, dest)
    return fetched


def restore_top(study: optuna.Study, study_dir: Path, n: int = 5) -> int:
    """Run files of the ``n`` best complete trials (what the loss curves read), from the study's
    store where they are missing here; an unreachable store is a warning, not an error."""
    from optuna.trial import TrialState

    try:
        store = study_store(study)
    except UserError as exc:
        log.warning("trial files not fetched: %s", exc)
        return 0
    if store is None:
        return 0
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    sign = -1.0 if study.directions[0].name == "MAXIMIZE" else 1.0
    done.sort(key=lambda t: (sign * t.values[0], t.number))
    return restore_trials(store, done[:n], study_dir)
