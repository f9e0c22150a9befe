"""Model zoo on JapaneseVowels: every built-in family trained by `tunelab train` with its defaults.

    python benchmarks/zoo.py                       # all families, writes benchmarks/RESULTS.md
    python benchmarks/zoo.py --families gru tcn    # a subset (other rows of the table are kept)

Each family runs as its own `tunelab train model.name=<family> --device cpu` process, exactly as a
user would run it; the numbers come from the run directory's summary.json.  The table replaces
the "Model zoo on JapaneseVowels (CPU)" section of RESULTS.md and leaves other sections alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Model zoo on JapaneseVowels (CPU)"
ROW = re.compile(r"^\| `(?P<family>[a-z0-9_]+)` \|")


def families() -> list[str]:
    """Built-in families (a fresh interpreter, so no plugin is registered)."""
    code = "import tunelab; from tunelab.registry import MODELS; print(' '.join(MODELS.names()))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=_env())
    return out.stdout.split()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    return env


def train(family: str, save_dir: Path, threads: int) -> dict[str, object]:
    """Run `tunelab train` for one family with its default config; return its table row."""
    cmd = [sys.executable, "-m", "tunelab", "train", f"model.name={family}", "--device", "cpu", "--quiet"]
    cmd += ["--save-dir", str(save_dir), "--name", family]
    env = _env() | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    summary = json.loads((save_dir / family / "summary.json").read_text())
    metrics = summary["metrics"]
    return {
        "family": family,
        "test_acc": metrics["test_acc"],
        "test_f1": metrics.get("test_f1", float("nan")),
        "n_params": summary["n_params"],
        "epochs": summary["epochs"],
        "best_epoch": summary["best_epoch"],
        "sec_per_epoch": summary["seconds"] / max(1, summary["epochs"]),
    }


def render(rows: list[dict[str, object]], command: str, threads: int) -> str:
    import torch

    lines = [
        SECTION,
        "",
        "Each built-in family trained once with its default config (`tunelab train model.name=<family>`):",
        "default data handling (official 270/370 train/test split, a stratified 20% of train for validation,",
        "per-channel z-scores) and training (AdamW, lr 3e-3, plateau schedule, early stopping on val_loss",
        "with patience 15, at most 60 epochs, seed 0).  Test accuracy uses the best-validation weights.",
        "Seconds per epoch include the validation pass.",
        "",
        f"Command: `{command}`  ",
        f"Machine: {_cpu_name()}, {os.cpu_count()} cores, {threads} torch thread(s) per run, torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.1f} at the end, {time.strftime('%Y-%m-%d')}",
        "",
        "| family | test acc | test F1 | parameters | epochs (best) | s / epoch |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: str(r["family"])):
        lines.append(
            f"| `{r['family']}` | {r['test_acc']:.3f} | {r['test_f1']:.3f} | {r['n_params']:,} | "
            f"{r['epochs']} ({r['best_epoch']}) | {r['sec_per_epoch']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_section(path: Path, text: str) -> None:
    """Replace (or append) the zoo section of ``path``; other sections stay as they are."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    start = old.find(SECTION)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        nxt = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text + (old[nxt:] if nxt >= 0 else "")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new)
    tmp.replace(path)


def previous_rows(path: Path) -> dict[str, str]:
    """Rows already in the section (kept when only some families are re-run)."""
    if not path.exists():
        return {}
    text = path.read_text()
    start = text.find(SECTION)
    if start < 0:
        return {}
    end = text.find("\n## ", start + len(SECTION))
    rows = {}
    for line in text[start : end if end >= 0 else None].splitlines():
        m = ROW.match(line)
        if m:
            rows[m["family"]] = line
    return rows


def parse_row(line: str) -> dict[str, object]:
    cells = [c.strip() for c in line.strip("|").split("|")]
    epochs, best = re.match(r"(\d+) \((\d+)\)", cells[4]).groups()  # type: ignore[union-attr]
    return {
        "family": cells[0].strip("`"),
        "test_acc": float(cells[1]),
        "test_f1": float(cells[2]),
        "n_params": int(cells[3].replace(",", "")),
        "epochs": int(epochs),
        "best_epoch": int(best),
        "sec_per_epoch": float(cells[5]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="*", help="default: every built-in family")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    names = args.families or families()
    rows = {f: parse_row(line) for f, line in previous_rows(args.out).items()}
    with tempfile.TemporaryDirectory(prefix="tunelab-zoo-") as tmp:
        for family in names:
            rows[family] = train(family, Path(tmp), args.threads)
            print(
                f"{family}: acc {rows[family]['test_acc']:.3f}, {rows[family]['sec_per_epoch']:.2f} s/epoch", flush=True
            )
    command = "python benchmarks/zoo.py" + (f" --threads {args.threads}" if args.threads != 2 else "")
    write_section(args.out, render(list(rows.values()), command, args.threads))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
