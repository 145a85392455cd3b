"""Round 28: the pre-clip gradient norm of each loop step's fresh-batch update (train rows'
`grad_norm`) in the CL3 runs, per task, to see how many updates clipping at 1.0 already clips.

    python docs/results/tuning28/grad_norms.py > docs/results/tuning28/grad_norms.txt
"""
import glob
import json

import numpy as np

for task in ("arithmetic", "sort", "style"):
    g = []
    for f in sorted(glob.glob(f"runs/tuning28/{task}-pas-CL3/passive-s*/metrics.jsonl")):
        g += [json.loads(line).get("grad_norm") for line in open(f)]
    g = np.array([x for x in g if x is not None])
    print(f"{task}: fresh-batch updates {len(g)}, pre-clip gradient norm min {g.min():.3f} "
          f"median {np.median(g):.3f}, share below 1.0 {(g < 1).mean():.3f}")
