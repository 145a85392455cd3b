"""Feature encoders for `erm.encoder` on the `arithmetic` task, built the way a user could.

There is no pretrained reward-model backbone for these character-level tasks, so the probe
(bench/erm_probe.py --encoder) measures encoders trained on the task's *generic* SFT data: the
starting policy's own data (the sloppy calculator, duel.tasks.arithmetic: responses c + d with the
overshooting offset distribution), never on the gold reward, on preferences or on exact answers
only. Whatever they know about the sum, the starting policy saw the same data.

    big     hidden 128, intermediate 384 (vs 96, 256; 2 layers as the policy), 800 SFT steps (vs 600),
            lr 2e-3, another seed (1): a wider model trained longer on the same data (a 192-wide,
            4-layer encoder for 1500 steps was stopped: hours on the shared 2-core machine)
    seed1   the starting policy's exact recipe (96, 2 layers, 600 steps) with seed 1

Both use the task's character tokenizer (identical tokenizer.json: erm.encoder requires it).
Each is built once (the task's SFT code path, duel.tasks.base.Task.starting_policy) and cached
under DUEL_CACHE like the starting policies:

    .venv/bin/python bench/erm_encoder.py big seed1     # prints the directories
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from duel.tasks.arithmetic import Arithmetic  # noqa: E402


class ArithmeticEncoderBig(Arithmetic):
    """The arithmetic SFT data, a wider model trained longer (seed 1)."""

    name = "arithmetic-encoder-big"
    seed = 1
    model: ClassVar[dict] = {"hidden_size": 128, "num_layers": 2, "num_heads": 4, "intermediate_size": 384}
    sft: ClassVar[dict] = {"examples": 16384, "steps": 800, "batch_size": 64, "learning_rate": 2e-3,
                           "warmup_steps": 30}


class ArithmeticEncoderSeed1(Arithmetic):
    """The starting policy's recipe with seed 1 (another draw of the same SFT)."""

    name = "arithmetic-encoder-seed1"
    seed = 1


ENCODERS = {"big": ArithmeticEncoderBig, "seed1": ArithmeticEncoderSeed1}


def encoder_dir(kind: str, cache_dir=None) -> str:
    """The HF directory of encoder `kind` (trained on first use, then cached)."""
    from learner.setup import cache_dir as default_cache

    return str(ENCODERS[kind]().starting_policy(cache_dir or default_cache()))


def main(argv=None) -> list[str]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kinds", nargs="+", choices=sorted(ENCODERS))
    args = ap.parse_args(argv)
    out = []
    for k in args.kinds:
        out.append(encoder_dir(k))
        print(f"{k}: {out[-1]}", flush=True)
    return out


if __name__ == "__main__":
    main()
