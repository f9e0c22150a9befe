"""Export a trained model to ONNX or TorchScript with dynamic batch and length axes.

The exported graph takes ``x`` float32 ``[B, T, C]`` (padded with zeros, normalised like the
training data) and ``lengths`` int64 ``[B]``, and returns ``out`` ``[B, n_out]`` (``[B, T, C_out]``
for seq2seq models); ``B`` and ``T`` are free.  Every export is checked against the PyTorch model
on a probe batch whose size, length and per-row lengths differ from the example used to export,
so a graph that silently fixed a shape is refused instead of shipped.

ONNX goes through ``torch.onnx.export``: first the torch.export-based exporter (PyTorch's
default), and when it cannot capture the model — recurrent families pack their sequences with
``pack_padded_sequence``, whose data-dependent shapes torch.export rejects — the TorchScript-based
exporter, which maps packed GRU/LSTM layers to ONNX's ``sequence_lens`` input.  TorchScript uses
``torch.jit.trace``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import torch
from torch import Tensor, nn

from tunelab.errors import UserError
from tunelab.results.io import atomic_write, write_json

__all__ = ["FORMATS", "ExportResult", "Normalized", "export_model", "export_run", "probe_batch", "write_bytes"]

log = logging.getLogger(__name__)

Format = Literal["onnx", "torchscript"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
HINT = "pip install 'tunelab[export]'"

# float32 graphs re-associate sums differently from eager PyTorch: agree to ~1e-6, allow 1e-4
ATOL, RTOL = 1e-4, 1e-3


@dataclass
class ExportResult:
    """Where the model went, how, and how closely the exported graph matched PyTorch."""

    path: Path
    format: str
    family: str
    exporter: str  # "torch.export", "torchscript-onnx" or "jit.trace"
    max_abs_diff: float
    inputs: dict[str, str] = field(default_factory=dict)
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def probe_batch(channels: int, batch: int, t: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A zero-padded random batch with distinct lengths (the longest is ``t``, the shortest 1)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.linspace(t, 1, batch).round().long() if batch > 1 else torch.tensor([t])
    x = torch.randn(batch, t, channels, generator=g)
    return x * (torch.arange(t)[None, :, None] < lengths[:, None, None]), lengths


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress logs and deprecation chatter for the duration."""
    names = ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "onnxscript")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    summary = text.split("## Exception summary")[-1].strip() if "## Exception summary" in text else text
    line = next((s for s in summary.splitlines() if s.strip()), type(exc).__name__)
    return line.replace("\x1b[96m", "").replace("\x1b[0m", "")[:200]


def _check_signature(model: nn.Module, family: str) -> None:
    params = [
        p
        for p in inspect.signature(model.forward).parameters.values()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    extra = [p.name for p in params if p.name not in ("x", "lengths") and p.default is inspect.Parameter.empty]
    if extra:
        raise UserError(
            f"model.name={family} takes extra inputs ({', '.join(extra)}); export handles models of (x, lengths) only — "
            "save the state_dict and rebuild the model in PyTorch instead"
        )


def _onnx_bytes(
    model: nn.Module, x: Tensor, lengths: Tensor, seq2seq: bool, workdir: Path
) -> tuple[bytes, str, list[str]]:
    """Export with the torch.export-based exporter, falling back to the TorchScript-based one."""
    try:
        import onnx  # noqa: F401  (both exporters need it)
    except ImportError:
        raise UserError(f"ONNX export needs the onnx package: {HINT}") from None
    out_axes = {0: "batch", 1: "time"} if seq2seq else {0: "batch"}
    errors: list[str] = []
    path = workdir / "model.onnx"
    with _quiet():
        try:
            import onnxscript  # noqa: F401  (the torch.export-based exporter is written in it)

            program = torch.onnx.export(
                model,
                (x, lengths),
                None,
                input_names=["x", "lengths"],
                output_names=["out"],
                dynamo=True,
                dynamic_shapes={"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}},
                verbose=False,
            )
            assert program is not None
            program.save(str(path))
            return path.read_bytes(), "torch.export", errors
        except Exception as exc:  # torch.export refuses data-dependent shapes (packed RNNs)
            errors.append(f"torch.export: {_first_line(exc)}")
            log.info("torch.export-based ONNX export failed (%s); trying the TorchScript-based exporter", errors[-1])
        try:
            torch.onnx.export(
                model,
                (x, lengths),
                str(path),
                input_names=["x", "lengths"],
                output_names=["out"],
                dynamo=False,
                dynamic_axes={"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "out": out_axes},
                opset_version=17,
            )
            return path.read_bytes(), "torchscript-onnx", errors
        except Exception as exc:
            errors.append(f"torchscript-onnx: {_first_line(exc)}")
    return b"", "", errors


def _run_onnx(data: bytes, x: Tensor, lengths: Tensor) -> Tensor:
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError(f"checking the ONNX export needs onnxruntime: {HINT}") from None
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    feeds = {"x": x.numpy().astype("float32"), "lengths": lengths.numpy().astype("int64")}
    return torch.from_numpy(session.run(None, feeds)[0])


def export_model(
    model: nn.Module,
    channels: int,
    path: str | Path,
    fmt: str = "onnx",
    *,
    family: str = "model",
    seq2seq: bool = False,
    probes: list[tuple[Tensor, Tensor]] | None = None,
) -> ExportResult:
    """Export ``model`` (taking ``x [B, T, channels]`` and ``lengths [B]``) to ``path``.

    The export is checked against PyTorch on ``probes`` (by default two random padded batches
    whose batch size and length differ from the export example); a mismatch beyond
    ``atol=1e-4, rtol=1e-3`` raises a UserError naming the family and the other format.
    """
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: unknown export format; use one of {', '.join(FORMATS)}")
    _check_signature(model, family)
    model = model.to("cpu").eval()
    x, _ = probe_batch(channels, 2, 6, seed=1)  # the export example: its sizes (2, 6) differ from every probe's
    lengths = torch.tensor([6, 3])
    x[1, 3:] = 0
    probes = probes or [probe_batch(channels, 3, 11, seed=2), probe_batch(channels, 1, 4, seed=3)]
    with tempfile.TemporaryDirectory() as tmp:
        data, exporter, run = _convert(model, x, lengths, fmt, family, seq2seq, Path(tmp))
        diff = _check_probes(model, run, probes, fmt, exporter, family)
    out = Path(path)
    write_bytes(out, data)
    out_shape = "[batch, time, channels_out]" if seq2seq else "[batch, n_out]"
    return ExportResult(
        path=out,
        format=fmt,
        family=family,
        exporter=exporter,
        max_abs_diff=diff,
        inputs={
            "x": f"float32 [batch, time, {channels}], zero-padded",
            "lengths": "int64 [batch], valid steps per row",
        },
        output=f"float32 {out_shape}",
    )


def _convert(
    model: nn.Module, x: Tensor, lengths: Tensor, fmt: str, family: str, seq2seq: bool, tmp: Path
) -> tuple[bytes, str, Callable[[Tensor, Tensor], Tensor]]:
    """The exported file's bytes, the exporter used, and a function running the export."""
    other = "torchscript" if fmt == "onnx" else "onnx"
    if fmt == "onnx":
        data, exporter, errors = _onnx_bytes(model, x, lengths, seq2seq, tmp)
        if not data:
            raise UserError(
                f"model.name={family} cannot be exported to ONNX with torch {torch.__version__} ({'; '.join(errors)}); use --format {other}"
            )

        def run(px: Tensor, pl: Tensor) -> Tensor:
            return _run_onnx(data, px, pl)
    else:
        try:
            with _quiet(), torch.no_grad():
                traced = torch.jit.trace(model, (x, lengths), check_trace=False)
        except Exception as exc:
            raise UserError(
                f"model.name={family} cannot be traced to TorchScript ({_first_line(exc)}); use --format {other}"
            ) from None
        exporter = "jit.trace"
        buf = tmp / "model.pt"
        with _quiet():
            torch.jit.save(traced, str(buf))
        data = buf.read_bytes()

        def run(px: Tensor, pl: Tensor) -> Tensor:
            with torch.no_grad(), _quiet():
                return traced(px, pl)  # type: ignore[no-any-return]

    return data, exporter, run


def _check_probes(
    model: nn.Module,
    run: Callable[[Tensor, Tensor], Tensor],
    probes: list[tuple[Tensor, Tensor]],
    fmt: str,
    exporter: str,
    family: str,
) -> float:
    """The largest difference between the export and PyTorch on ``probes``; a UserError beyond tolerance."""
    other = "torchscript" if fmt == "onnx" else "onnx"
    diff = 0.0
    for px, pl in probes:
        with torch.no_grad():
            want = model(px, pl).float()
        try:
            got = run(px, pl).float()
        except Exception as exc:
            raise UserError(
                f"model.name={family}: the {fmt} export fails on a batch of another size/length ({_first_line(exc)}); use --format {other}"
            ) from None
        if got.shape != want.shape or not torch.allclose(got, want, atol=ATOL, rtol=RTOL):
            bad = float((got - want).abs().max()) if got.shape == want.shape else float("inf")
            raise UserError(
                f"model.name={family}: the {fmt} export ({exporter}) disagrees with PyTorch on variable-length input "
                f"(max |diff| {bad:.3g}); use --format {other}"
            )
        diff = max(diff, float((got - want).abs().max()) if got.numel() else 0.0)
    return diff


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""

    def write(fh: IO[bytes]) -> None:
        fh.write(data)

    atomic_write(path, write)


class Normalized(nn.Module):
    """``model`` behind the data's normalisation, so the exported graph takes raw inputs.

    Valid steps of ``x`` become ``(x - mean) / std`` and padding stays zero, as
    ``tunelab.data.prepare`` does; seq2seq and regression outputs are mapped back to target units.
    """

    mean: Tensor
    std: Tensor
    target_mean: Tensor
    target_std: Tensor

    def __init__(
        self,
        model: nn.Module,
        mean: Tensor,
        std: Tensor,
        target_mean: Tensor | None = None,
        target_std: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", mean.detach().float().clone())
        self.register_buffer("std", std.detach().float().clone())
        self.denormalize = target_mean is not None and target_std is not None
        self.register_buffer(
            "target_mean", (target_mean if target_mean is not None else torch.zeros(1)).detach().float().clone()
        )
        self.register_buffer(
            "target_std", (target_std if target_std is not None else torch.ones(1)).detach().float().clone()
        )

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        valid = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]).unsqueeze(-1)
        z = torch.where(valid, (x - self.mean) / self.std, torch.zeros((), dtype=x.dtype, device=x.device))
        out = self.model(z, lengths)
        if self.denormalize and out.dim() == 3:
            keep = valid[:, : out.shape[1]]
            out = torch.where(
                keep, out * self.target_std + self.target_mean, torch.zeros((), dtype=out.dtype, device=out.device)
            )
        elif self.denormalize:  # regression [B, D]
            out = out * self.target_std + self.target_mean
        return out  # type: ignore[no-any-return]


def _is_identity(mean: Tensor | None, std: Tensor | None) -> bool:
    return mean is None or std is None or (bool((mean == 0).all()) and bool((std == 1).all()))


def export_run(
    run: str | Path,
    fmt: str = "onnx",
    out: str | Path | None = None,
    *,
    data: Any | None = None,
    normalize: bool = True,
) -> ExportResult:
    """Export the best model of a run or study directory (or a ``best_model.pt``).

    The data split is rebuilt from the saved config (``tunelab.data.prepare``) unless ``data``
    (a prepared ``Splits``) is given.  With ``normalize`` (the default) the data's normalisation
    is part of the exported graph, so it takes inputs in the data's own units; without it, the
    graph expects inputs normalised as in training (mean/std are in the sidecar).  Up to 16 test
    rows join the random probes, so the export is also checked on real, variable-length data.
    ``<out>.json`` beside the file records the inputs, output, classes, normalisation and check.
    """
    from tunelab.ensemble import load_ensemble_model
    from tunelab.results.io import load_checkpoint
    from tunelab.train.checkpoint import load_model

    ckpt, home, ensemble = _checkpoint(run)
    if data is None:
        from tunelab.config import validate_config
        from tunelab.data import prepare

        cfg = validate_config(load_checkpoint(ckpt)[1], f"{ckpt} (saved config)")
        data = prepare(cfg.data, cfg.seed)
    meta = data.meta
    notes: list[str] = []
    model: nn.Module
    if ensemble:
        model, families, notes = load_ensemble_model(run, meta)
        family = f"ensemble of {len(families)} ({', '.join(families)})"
        for note in notes:
            log.warning("%s", note)
    else:
        model, cfg, _ = load_model(ckpt, meta)
        family = cfg.model.name
    mean, std = getattr(data, "mean", None), getattr(data, "std", None)
    t_mean, t_std = getattr(data, "target_mean", None), getattr(data, "target_std", None)
    baked = normalize and not (_is_identity(mean, std) and _is_identity(t_mean, t_std))
    if baked:
        c = meta.channels
        model = Normalized(
            model,
            mean if mean is not None else torch.zeros(c),
            std if std is not None else torch.ones(c),
            t_mean,
            t_std,
        )
    if out is None:
        out = (home if ensemble else ckpt.parent) / f"model{SUFFIX.get(fmt, '.' + fmt)}"
    probes = _test_probes(data, mean, std) if baked else _test_probes(data, None, None)
    result = export_model(model, meta.channels, out, fmt, family=family, seq2seq=meta.task == "seq2seq", probes=probes)
    sidecar = _sidecar(result, ckpt, meta, baked, notes if ensemble else None, (mean, std, t_mean, t_std))
    write_json(Path(str(result.path) + ".json"), sidecar)
    return result


def _checkpoint(run: str | Path) -> tuple[Path, Path, bool]:
    """The checkpoint of a run/study/ensemble folder (or file), where the export goes by default,
    and whether it is a `tunelab ensemble` folder."""
    from tunelab.ensemble import ensemble_checkpoint, is_ensemble

    ensemble = is_ensemble(run)
    ckpt = Path(run)
    home = ckpt.parent if ckpt.is_file() else ckpt  # where model.<format> goes by default
    if ensemble:  # a `tunelab ensemble` folder: its first deep member's checkpoint names the data
        ckpt = ensemble_checkpoint(run)
    elif ckpt.is_dir():
        ckpt = ckpt / "best_model.pt"
    if not ckpt.is_file():
        raise UserError(
            f"{run}: no best_model.pt there; pass a run or study directory written by tunelab, or a checkpoint file"
        )
    return ckpt, home, ensemble


def _test_probes(data: Any, mean: Tensor | None, std: Tensor | None) -> list[tuple[Tensor, Tensor]] | None:
    """Up to 16 test rows (in the data's own units when ``mean``/``std`` are given: the
    normalisation is inside the graph) beside two random batches of other sizes."""
    meta = data.meta
    probes = None
    test = data.test
    if len(test) and not test.extras:
        n = min(16, len(test))
        t = int(test.lengths[:n].max())
        x, lengths = test.x[:n, :t].float().cpu(), test.lengths[:n].long().cpu()
        if mean is not None and std is not None:  # back to the data's units, as a user would feed it
            valid = (torch.arange(t)[None, :] < lengths[:, None]).unsqueeze(-1)
            x = torch.where(valid, x * std.float() + mean.float(), torch.zeros(()))
        probes = [
            (x, lengths),
            probe_batch(meta.channels, 3, t + 5, seed=2),
            probe_batch(meta.channels, 1, max(2, t // 2), seed=3),
        ]
    return probes


def _sidecar(
    result: ExportResult,
    ckpt: Path,
    meta: Any,
    baked: bool,
    notes: list[str] | None,
    stats: tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None],
) -> dict[str, Any]:
    """``<out>.json``: the inputs, output, classes, normalisation and check of an export."""
    mean, std, t_mean, t_std = stats
    ensemble = notes is not None
    return {
        **result.to_dict(),
        "source": str(ckpt),
        "task": meta.task,
        "classes": list(meta.class_names),
        "torch": torch.__version__,
        "normalization_inside": baked,
        **(
            {"ensemble": {"output": "log of the members' mean calibrated probabilities", "notes": notes}}
            if ensemble
            else {}
        ),
        "note": (
            "inputs in the data's own units (normalisation is inside the graph)"
            if baked
            else "inputs normalised like the training data: (x - mean) / std on valid steps"
        )
        + "; zero beyond each row's length",
        "normalization": {
            k: _jsonable(v)
            for k, v in {"mean": mean, "std": std, "target_mean": t_mean, "target_std": t_std}.items()
            if v is not None
        },
    }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.tolist()
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if hasattr(obj, "__dataclass_fields__"):
        return {k: _jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, tuple | list):
        return [_jsonable(v) for v in obj]
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        return str(obj)
