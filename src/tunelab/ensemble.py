"""Top-k ensembles of a study: the mean of the K best trials' calibrated class probabilities.

``tunelab ensemble STUDY_DIR --top-k K`` takes the K best completed trials that kept a checkpoint
(``trials/<n>-<time>/best_model.pt``), turns each one's logits into probabilities with the
temperature it fitted on validation (``softmax(logits / T)``; T = 1 when temperature scaling was
off), averages them, and scores the mean on the validation and test splits.  With
``--with-reference`` MiniRocket joins: its ridge decision values are not probabilities, so they get
the same treatment (a temperature fitted on validation, then a softmax), and the ensemble is then
two families with an equal say: the deep members' mean and MiniRocket, each weighing
:data:`REFERENCE_WEIGHT` (``--reference-weight``).  MiniRocket has no saved weights; evaluating
such an ensemble refits it (deterministic, seconds).

It is saved as ``STUDY_DIR/ensemble/``::

    ensemble.json        the manifest: members (trial, value, temperature, checkpoint), metrics
    members/<n>.pt       a copy of each member's checkpoint (the folder stands on its own)

A classification study builds this ensemble itself when it ends (``tunelab tune --ensemble K``,
default 5; :func:`study_ensemble`), with its MiniRocket reference as the other half unless
``--no-ensemble-reference`` or ``--no-reference``, so its summary, ``study_results.json`` and
report.html show the best single trial, the ensemble and MiniRocket together.  Measured on 12
small UCR datasets (benchmarks/RESULTS.md, 2026-12-07, 120 s studies on 2 CPU cores): mean test
accuracy 0.842 for the best trial, 0.861 for the top-5 mean, 0.917 with MiniRocket as its other half
(MiniRocket alone 0.926: the trials were cut short by the budget there).

``tunelab evaluate STUDY_DIR/ensemble`` re-scores it and ``tunelab export STUDY_DIR/ensemble``
exports :class:`EnsembleModel` (one module that averages the deep members' softmax outputs and
returns the log of the mean; MiniRocket is not a torch module and is left out, with a note).  Every member
must have been trained on the same data settings and seed: the splits must be the same rows.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tunelab.baselines.reference import DECISIONS_FILE, kept_decisions
from tunelab.errors import UserError
from tunelab.results.io import atomic_write, read_json, write_json

__all__ = [
    "MANIFEST",
    "EnsembleModel",
    "EnsembleResult",
    "build_ensemble",
    "describe",
    "ensemble_checkpoint",
    "evaluate_ensemble",
    "is_ensemble",
    "load_ensemble_model",
    "mean_probabilities",
    "member_weights",
    "study_ensemble",
]

log = logging.getLogger(__name__)

MANIFEST = "ensemble.json"
FORMAT = "tunelab-ensemble-1"
REFERENCE_MEMBER = "MiniRocket"

#: MiniRocket's share of an ensemble it joins; the deep members share the rest equally.  A share
#: per family, not per member: as one more equal member its say shrank with K (1/6 beside the top 5).
#: Measured on the same members (12 UCR datasets, 120 s studies on 2 CPU cores,
#: benchmarks/RESULTS.md 2026-12-07): mean test accuracy 0.891 with MiniRocket as a sixth member,
#: 0.917 at 0.5 (higher on 6 datasets, equal on 5, 2 points lower on DiatomSizeReduction, where the
#: trials beat MiniRocket); the trials alone 0.861, MiniRocket alone 0.926.
REFERENCE_WEIGHT = 0.5

#: False: studies end without their ensemble in this process (the test suite does, except in the
#: tests that look at it).  ``tunelab tune --ensemble 0`` turns it off for one study.
ENABLED = True


@dataclass
class EnsembleResult:
    """What ``build_ensemble`` saved and measured."""

    path: Path  # the ensemble folder
    members: list[dict[str, Any]]
    metrics: dict[str, float]  # val_/test_ loss, acc, f1 of the averaged probabilities
    best_single: dict[str, Any] = field(default_factory=dict)  # number and test metrics of the best trial
    reference: dict[str, Any] | None = None  # the study's MiniRocket record, when it has one
    record: dict[str, Any] = field(default_factory=dict)  # what study_results.json["ensemble"] now holds


class EnsembleModel(nn.Module):
    """Members' ``softmax(out / T)`` averaged; returns the log of the mean (``[B, n_classes]``).

    The deep members weigh the same in every ensemble, so their plain mean is the ensemble's
    deep part (MiniRocket, when a member, is left out of an export)."""

    def __init__(self, members: list[nn.Module], temperatures: list[float]) -> None:
        super().__init__()
        if not members or len(members) != len(temperatures):
            raise ValueError("an ensemble needs one temperature per member, and at least one member")
        self.members = nn.ModuleList(members)
        self.temperatures: Tensor
        self.register_buffer("temperatures", torch.tensor(temperatures, dtype=torch.float32))

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        probs = [torch.softmax(m(x, lengths).float() / self.temperatures[i], -1) for i, m in enumerate(self.members)]
        return torch.log(torch.stack(probs).mean(0).clamp_min(1e-12))


def mean_probabilities(logits: list[Tensor], temperatures: list[float], weights: list[float] | None = None) -> Tensor:
    """The ensemble's probabilities: the mean over members of ``softmax(logits_i / T_i)``, weighted
    by ``weights`` (normalised; default equal)."""
    probs = torch.stack([torch.softmax(z.float() / t, -1) for z, t in zip(logits, temperatures, strict=True)])
    if weights is None:
        return probs.mean(0)
    w = torch.tensor(weights, dtype=probs.dtype)
    return torch.einsum("m,m...->...", w / w.sum(), probs)


def member_weights(n_deep: int, reference_weight: float | None) -> list[float]:
    """Each member's weight: the deep members share ``1 - reference_weight`` equally and MiniRocket
    (last) has ``reference_weight``; without it (None) the deep members share 1."""
    if reference_weight is None:
        return [1 / n_deep] * n_deep
    return [(1 - reference_weight) / n_deep] * n_deep + [reference_weight]


def is_ensemble(path: str | Path) -> bool:
    """True for an ensemble folder (holding ensemble.json) or its manifest."""
    p = Path(path)
    return (p / MANIFEST).is_file() or (p.name == MANIFEST and p.is_file())


def _folder(path: str | Path) -> Path:
    p = Path(path)
    return p.parent if p.name == MANIFEST else p


def _score(probs: Tensor, y: Tensor, n_classes: int) -> dict[str, float]:
    from tunelab.train.metrics import classification_metrics

    logp = torch.log(probs.clamp_min(1e-12))
    nll = float(torch.nn.functional.nll_loss(logp, y.long()))
    return {"loss": nll, **classification_metrics(logp, y.long(), n_classes)}


def _members_from_study(study_dir: Path, top_k: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The K best completed trials with a checkpoint (from study_results.json), and the file."""
    path = study_dir / "study_results.json"
    if not path.is_file():
        raise UserError(f"{study_dir}: no study_results.json; pass a runs/<study> folder written by `tunelab tune`")
    results = read_json(path)
    sign = -1.0 if (results.get("directions") or ["maximize"])[0] == "maximize" else 1.0
    done = [
        t
        for t in results.get("trials", [])
        if t.get("state") == "COMPLETE"
        and t.get("values")
        and t["values"][0] is not None
        and (t.get("user_attrs") or {}).get("run_dir")
        and (study_dir / t["user_attrs"]["run_dir"] / "best_model.pt").is_file()
    ]
    if not done:
        raise UserError(
            f"{study_dir}: no completed trial kept a checkpoint (trials/*/best_model.pt); nothing to ensemble"
        )
    from tunelab.results.study import tie_loss

    done.sort(key=lambda t: (sign * t["values"][0], tie_loss(t["user_attrs"]), t["number"]))
    chosen = done[:top_k]
    members = [
        {
            "trial": t["number"],
            "value": t["values"][0],
            "checkpoint": str(study_dir / t["user_attrs"]["run_dir"] / "best_model.pt"),
            "test_acc": (t["user_attrs"].get("metrics") or {}).get("test_acc"),
            "test_f1": (t["user_attrs"].get("metrics") or {}).get("test_f1"),
        }
        for t in chosen
    ]
    return members, results


def _data_key(cfg: Any) -> str:
    from tunelab.data import data_key

    return data_key(cfg.data, cfg.seed)


def _device(device: str, cfg: Any) -> str:
    """The device the members and MiniRocket run on: ``device``, or the first member's when ``auto``."""
    return device if device != "auto" else cfg.device


def _member_logits(
    checkpoints: list[Path], device: str, data: Any | None = None
) -> tuple[Any, list[dict[str, Tensor]], list[float], list[Any]]:
    """Prepared splits (once; ``data`` when the study was given its splits), each member's val/test
    outputs and temperature, and their configs.  A member whose checkpoint kept its final val/test
    outputs, computed on these very rows (:func:`~tunelab.train.result.kept_outputs`), is not
    run again (on a CPU that took a minute for 2,850 test series); otherwise it predicts."""
    from tunelab.config import validate_config
    from tunelab.data import prepare
    from tunelab.models import build_model
    from tunelab.results.io import load_checkpoint
    from tunelab.train.device import resolve_device
    from tunelab.train.result import kept_outputs, split_digests
    from tunelab.train.trainer import predict

    loaded = [load_checkpoint(p) for p in checkpoints]
    cfgs = [validate_config(c, f"{p} (saved config)") for p, (_, c, _) in zip(checkpoints, loaded, strict=True)]
    keys = {_data_key(c) for c in cfgs}
    if len(keys) > 1:
        raise UserError(
            f"the members {', '.join(str(p.parent.name) for p in checkpoints)} were trained on different data settings"
            " or seeds, so their splits differ; ensemble trials of one data setting (lower --top-k)"
        )
    splits = data if data is not None else prepare(cfgs[0].data, cfgs[0].seed)
    if splits.meta.task != "classification":
        raise UserError(
            f"{splits.meta.name}: ensembles average class probabilities; the data's task is {splits.meta.task}"
        )
    dev = resolve_device(_device(device, cfgs[0]))
    outputs, temps = [], []
    digests = split_digests(splits)
    for (state, _, extra), cfg in zip(loaded, cfgs, strict=True):
        temps.append(float(extra.get("temperature", 1.0)))
        kept = kept_outputs(extra.get("outputs"), digests)
        if kept is not None:
            outputs.append(kept)
            continue
        model = build_model(cfg.model, splits.meta)
        model.load_state_dict(state)
        model.to(dev).eval()
        outputs.append(
            {
                name: predict(model, part.to(dev), 256, cfg.train.amp).float().cpu()
                for name, part in (("val", splits.val), ("test", splits.test))
                if len(part)
            }
        )
    return splits, outputs, temps, cfgs


def _reference_logits(splits: Any, seed: int, device: str, kept: Path | None = None) -> tuple[dict[str, Tensor], float]:
    """MiniRocket's ridge decision values on val/test as logits, and the temperature fitted on val:
    those the study's reference kept (``kept``, :data:`~tunelab.baselines.reference.DECISIONS_FILE`)
    when they were computed on these rows with this seed, else fitted again on ``device``."""
    from tunelab.baselines.minirocket import fit_minirocket
    from tunelab.train.metrics import fit_temperature

    logits = kept_decisions(kept, splits, seed) if kept is not None else None
    if logits is None:
        fit = fit_minirocket(splits, seed=seed, keep_decisions=True, device=device)
        logits = fit.extra["decisions"]
    t = fit_temperature(logits["val"], splits.val.y) if "val" in logits else 1.0
    return logits, t


def _combine(
    splits: Any, outputs: list[dict[str, Tensor]], temps: list[float], weights: list[float]
) -> tuple[dict[str, float], dict[str, Tensor]]:
    metrics: dict[str, float] = {}
    probs: dict[str, Tensor] = {}
    for name in ("val", "test"):
        if not all(name in o for o in outputs):
            continue
        p = mean_probabilities([o[name] for o in outputs], temps, weights)
        probs[name] = p
        y = getattr(splits, name).y.cpu()
        metrics |= {f"{name}_{k}": v for k, v in _score(p, y, splits.meta.n_classes).items()}
    return metrics, probs


def build_ensemble(
    study_dir: str | Path,
    top_k: int = 5,
    *,
    with_reference: bool | None = None,
    reference_weight: float = REFERENCE_WEIGHT,
    device: str = "auto",
    data: Any | None = None,
    min_members: int = 1,
) -> EnsembleResult:
    """Average the ``top_k`` best trials of the study in ``study_dir`` (plus MiniRocket with
    ``with_reference``, weighing ``reference_weight``), score it on val and test, and save it to
    ``study_dir/ensemble/``.  ``with_reference=None``: as the study, MiniRocket joins when the
    study fitted it as its reference.

    ``data``: the prepared splits the study was given (``tune(..., data=)``); by default they are
    prepared again from the members' saved data settings.  Fewer than ``min_members`` members
    (trials with a checkpoint, and MiniRocket) is a :class:`UserError`, raised before anything is computed or written."""
    if top_k < 1:
        raise UserError(f"--top-k {top_k}: use 1 or more")
    if not 0 < reference_weight < 1:
        raise UserError(f"--reference-weight {reference_weight:g}: use a share between 0 and 1 (0.5: half MiniRocket)")
    sdir = Path(study_dir)
    members, results = _members_from_study(sdir, top_k)
    if with_reference is None:
        with_reference = bool(results.get("reference"))
    if len(members) + with_reference < min_members:
        raise UserError(
            f"{sdir}: {len(members)} completed trial(s) kept a checkpoint; an ensemble needs {min_members} members"
        )
    t0 = time.perf_counter()
    splits, outputs, temps, cfgs = _member_logits([Path(m["checkpoint"]) for m in members], device, data)
    for m, t in zip(members, temps, strict=True):
        m["temperature"] = t
    if with_reference:
        kept = sdir / DECISIONS_FILE
        ref_logits, ref_t = _reference_logits(splits, cfgs[0].seed, _device(device, cfgs[0]), kept)
        outputs.append(ref_logits)
        temps.append(ref_t)
        members.append({"trial": None, "name": REFERENCE_MEMBER, "temperature": ref_t, "seed": cfgs[0].seed})
    weights = member_weights(len(cfgs), reference_weight if with_reference else None)
    for m, w in zip(members, weights, strict=True):
        m["weight"] = w
    metrics, _ = _combine(splits, outputs, temps, weights)
    metrics["seconds"] = round(time.perf_counter() - t0, 3)

    out = sdir / "ensemble"
    (out / "members").mkdir(parents=True, exist_ok=True)
    for m in members:
        if m.get("trial") is None:
            continue
        src, dst = Path(m.pop("checkpoint")), out / "members" / f"{m['trial']}.pt"
        _copy(src, dst)
        m["checkpoint"] = f"members/{dst.name}"
    best = results.get("best_trial") or {}
    best_single = {
        "number": best.get("number"),
        **{k: v for k, v in (best.get("metrics") or {}).items() if k.startswith("test_")},
    }
    manifest = {
        "format": FORMAT,
        "study": results.get("study_name"),
        "objective": (results.get("objectives") or [None])[0],
        "top_k": top_k,
        "with_reference": with_reference,
        "members": members,
        "metrics": metrics,
        "best_single": best_single,
    }
    write_json(out / MANIFEST, manifest)
    names = [m["trial"] if m.get("trial") is not None else m["name"] for m in members]  # MiniRocket by name
    record = {"path": "ensemble", "members": names, **metrics}
    _record_in_study(sdir, results, record)
    return EnsembleResult(out, members, metrics, best_single, results.get("reference"), record)


def study_ensemble(
    study_dir: str | Path,
    top_k: int,
    device: str = "auto",
    data: Any | None = None,
    *,
    with_reference: bool | None = None,
    reference_weight: float = REFERENCE_WEIGHT,
) -> dict[str, Any] | None:
    """The ensemble a classification study builds when it ends: :func:`build_ensemble` of its
    ``top_k`` best trials and MiniRocket (``with_reference``; None: when the study fitted it as its
    reference), when it has two members or more (an ensemble of one is the best trial).  Returns the record it wrote to study_results.json, or
    None.  A failure is logged and skipped: the study is already saved, and ``tunelab ensemble`` can
    be run again by hand."""
    if not ENABLED or top_k < 1:
        return None
    try:
        result = build_ensemble(
            study_dir,
            top_k,
            with_reference=with_reference,
            reference_weight=reference_weight,
            device=device,
            data=data,
            min_members=2,
        )
    except UserError as exc:  # e.g. fewer than two trials kept a checkpoint on this host
        log.info("no ensemble for %s: %s", study_dir, exc)
        return None
    except Exception:
        log.warning(
            "the ensemble of %s failed; the study is saved (`tunelab ensemble` retries)", study_dir, exc_info=True
        )
        return None
    return result.record


def _copy(src: Path, dst: Path) -> None:
    with open(src, "rb") as fh:
        atomic_write(dst, lambda out: shutil.copyfileobj(fh, out))


def _record_in_study(sdir: Path, results: dict[str, Any], record: dict[str, Any]) -> None:
    """The ensemble's scores in study_results.json and as a study attribute (for ``analyze``)."""
    results["ensemble"] = record
    write_json(sdir / "study_results.json", results, indent=None)
    try:
        import optuna

        from tunelab.analysis.source import load_study, resolve_study
        from tunelab.results.attrs import STUDY

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        load_study(resolve_study(sdir)).set_user_attr(STUDY.ENSEMBLE, record)
    except Exception as exc:  # a study whose storage is gone still gets its ensemble folder
        log.info("the ensemble is not recorded in the study's storage (%s)", exc)


def _manifest(path: str | Path) -> tuple[Path, dict[str, Any]]:
    folder = _folder(path)
    manifest = read_json(folder / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{folder / MANIFEST}: not a tunelab ensemble manifest; build one with `tunelab ensemble`")
    return folder, manifest


def evaluate_ensemble(path: str | Path, device: str = "auto") -> dict[str, float]:
    """Re-score a saved ensemble on its val and test splits (MiniRocket, if a member, is refitted)."""
    folder, manifest = _manifest(path)
    deep = [m for m in manifest["members"] if m.get("trial") is not None]
    splits, outputs, temps, cfgs = _member_logits([folder / m["checkpoint"] for m in deep], device)
    refs = [m for m in manifest["members"] if m.get("trial") is None]
    if refs:
        kept = folder.parent / DECISIONS_FILE  # the study's, when the ensemble is in its folder
        ref_logits, ref_t = _reference_logits(splits, cfgs[0].seed, _device(device, cfgs[0]), kept)
        outputs.append(ref_logits)
        temps.append(ref_t)
    # an ensemble saved before members had weights: the plain mean it was scored with
    weights = [float(m.get("weight", 1.0)) for m in deep + refs]
    metrics, _ = _combine(splits, outputs, temps, weights)
    return metrics


def ensemble_checkpoint(path: str | Path) -> Path:
    """The first deep member's checkpoint (its config names the data the ensemble was scored on)."""
    folder, manifest = _manifest(path)
    deep = [m for m in manifest["members"] if m.get("trial") is not None]
    if not deep:
        raise UserError(f"{folder}: the ensemble has no deep member")
    return folder / deep[0]["checkpoint"]


def load_ensemble_model(path: str | Path, meta: Any) -> tuple[EnsembleModel, list[str], list[str]]:
    """The saved ensemble's deep members as one :class:`EnsembleModel`, the members' families,
    and notes (MiniRocket has no torch graph: an export leaves it out)."""
    from tunelab.train.checkpoint import load_model

    folder, manifest = _manifest(path)
    deep = [m for m in manifest["members"] if m.get("trial") is not None]
    if not deep:
        raise UserError(f"{folder}: the ensemble has no deep member to export")
    models, cfgs = [], []
    for m in deep:
        model, cfg, _ = load_model(folder / m["checkpoint"], meta)
        models.append(model.eval())
        cfgs.append(cfg)
    notes = []
    if len(deep) < len(manifest["members"]):
        notes.append("MiniRocket is not a torch module: the exported ensemble averages the deep members only")
    temps = [float(m.get("temperature", 1.0)) for m in deep]
    if not all(math.isfinite(t) and t > 0 for t in temps):
        raise UserError(f"{folder / MANIFEST}: a member's temperature is not a positive number")
    return EnsembleModel(models, temps), [c.model.name for c in cfgs], notes


def describe(result: EnsembleResult) -> list[str]:
    """Plain lines: best single trial, the ensemble and MiniRocket, on test accuracy and F1."""
    rows = []
    b = result.best_single
    if b.get("test_acc") is not None:
        rows.append(
            f"best single (trial {b.get('number')}): test_acc {b['test_acc']:.4f}  test_f1 {b.get('test_f1', float('nan')):.4f}"
        )
    names = ", ".join(
        str(m["trial"]) if m.get("trial") is not None else f"{m['name']} weighing {m.get('weight', 0):.2g}"
        for m in result.members
    )
    m = result.metrics
    rows.append(
        f"ensemble of {len(result.members)} ({names}): test_acc {m.get('test_acc', float('nan')):.4f}  test_f1 {m.get('test_f1', float('nan')):.4f}"
    )
    r = result.reference
    if r:
        rows.append(
            f"{r.get('name', 'reference')}: test_acc {r.get('test_acc', float('nan')):.4f}  test_f1 {r.get('test_f1', float('nan')):.4f}"
        )
    return rows
