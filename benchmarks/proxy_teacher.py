"""Train the proxy digits CLIP from scratch and measure its zero-shot accuracy on held-out digits.

Usage:
    python benchmarks/proxy_teacher.py --out benchmarks/results/proxy_teacher.json            # train anew
    python benchmarks/proxy_teacher.py --cached --out benchmarks/results/proxy_teacher.json   # re-measure the cached one
The accuracy is on the 359-image test split (seed 0) that the teacher never saw, with the
prompt-ensemble zero-shot head over the `digits` template set.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgeclip.bench.environment import collect_environment
from edgeclip.data import open_image_dataset
from edgeclip.teacher.proxy import ProxyTrainConfig, load_proxy_teacher, proxy_info, train_proxy_teacher, zero_shot_accuracy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/proxy_teacher.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cached", action="store_true",
                        help="use the cached proxy (trained on first use) and measure its accuracy again")
    args = parser.parse_args()
    if args.cached:
        teacher = load_proxy_teacher(progress=True)
        info = {**proxy_info(), "training_recorded_when_cached": True}
        info["zero_shot_accuracy_test"] = zero_shot_accuracy(teacher, open_image_dataset("digits", "test"))
    else:
        _, info = train_proxy_teacher(ProxyTrainConfig(seed=args.seed), progress=True)
    result = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(["python"] + sys.argv),
              **info, "environment": collect_environment()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"zero-shot accuracy on {info['test_images']} held-out digits: {info['zero_shot_accuracy_test']:.4f} "
          f"(trained in {info['train_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
