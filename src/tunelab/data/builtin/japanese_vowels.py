"""JapaneseVowels (UCI; Kudo, Toyama, Shimbo 1999), shipped inside the package — no network needed.

Nine male speakers uttering the Japanese vowels /ae/; each utterance is 7-29 frames of 12 LPC
cepstrum coefficients; the task is to name the speaker.  The official split is 270 training
utterances (30 per speaker) and 370 test ones.  Licence CC BY 4.0; see README.md beside this file.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch

from tunelab.data.base import DataMeta, SequenceData
from tunelab.registry import DATASETS

__all__ = ["FILE", "load_japanese_vowels"]

FILE = Path(__file__).with_name("japanese_vowels.npz")


@cache
def _arrays() -> dict[str, np.ndarray]:
    with np.load(FILE, allow_pickle=False) as z:  # plain arrays only: nothing is unpickled
        return {k: z[k] for k in ("values", "lengths", "labels", "split", "class_names")}


@DATASETS.register("japanese_vowels")
def load_japanese_vowels() -> SequenceData:
    """UCI JapaneseVowels: 9 speakers, 12 LPC channels, 7-29 frames, official 270/370 split."""
    a = _arrays()
    lengths = torch.from_numpy(a["lengths"].astype(np.int64))
    seqs = torch.split(torch.from_numpy(a["values"]), lengths.tolist())
    x = torch.nn.utils.rnn.pad_sequence(list(seqs), batch_first=True)
    names = tuple(str(n) for n in a["class_names"])
    meta = DataMeta(
        "japanese_vowels",
        channels=x.shape[2],
        max_len=x.shape[1],
        n_classes=len(names),
        class_names=names,
        n_outputs=len(names),
    )
    return SequenceData(
        x=x,
        lengths=lengths,
        y=torch.from_numpy(a["labels"].astype(np.int64)),
        meta=meta,
        split=torch.from_numpy(a["split"].astype(np.int64)),
    )
