"""Rebuild ``japanese_vowels.npz`` from the UEA archive's ``.ts`` files (run once, by maintainers).

The ``.ts`` files ship inside the sktime wheel on PyPI, so no other download is needed::

    pip download --no-deps sktime -d /tmp/sk
    cd /tmp/sk && unzip -o sktime-*.whl 'sktime/datasets/data/JapaneseVowels/*'
    python -m tunelab.data.builtin.make_japanese_vowels /tmp/sk/sktime/datasets/data/JapaneseVowels

It parses both files with tunelab's own ``.ts`` reader and writes one compressed ``.npz``:
``values`` float32 ``[sum(T_i), 12]`` (every utterance's frames, concatenated), ``lengths``
``[640]``, ``labels`` (class ids 0-8 for speakers "1"-"9"), ``split`` (0: the 270 official
training utterances, 1: the 370 test ones, in file order), ``class_names`` and the SHA-256 of
the source files.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from tunelab.data.formats.ts import load_ts_pair

__all__ = ["build"]

OUT = Path(__file__).with_name("japanese_vowels.npz")


def build(folder: str | Path, out: str | Path = OUT) -> Path:
    """Convert ``JapaneseVowels_TRAIN.ts`` and ``_TEST.ts`` in ``folder`` into ``out``."""
    folder = Path(folder)
    train, test = folder / "JapaneseVowels_TRAIN.ts", folder / "JapaneseVowels_TEST.ts"
    data = load_ts_pair(train, test, name="japanese_vowels")
    assert data.split is not None
    values = np.concatenate([data.x[i, :n].numpy() for i, n in enumerate(data.lengths.tolist())])
    np.savez_compressed(
        out,
        values=values.astype(np.float32),
        lengths=data.lengths.numpy().astype(np.int16),
        labels=data.y.numpy().astype(np.int8),
        split=data.split.numpy().astype(np.int8),
        class_names=np.array(data.meta.class_names),
        source_sha256=np.array([hashlib.sha256(f.read_bytes()).hexdigest() for f in (train, test)]),
    )
    return Path(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tunelab.data.builtin.make_japanese_vowels FOLDER_WITH_JapaneseVowels_TRAIN.ts")
    path = build(sys.argv[1])
    sys.stdout.write(f"wrote {path} ({path.stat().st_size:,} bytes)\n")
