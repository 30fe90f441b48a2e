"""`edgeclip distill`: Hinton KD from a fine-tuned CLIP (or CNN) teacher into a classifier student,
or any other distillation method by name (`--method data-free`: class names only, paper 002)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from edgeclip.commands import add_parser, add_recipe_arguments, recipe_from_args
from edgeclip.errors import UserError
from edgeclip.io_utils import check_output_dir
from edgeclip.paths import default_run_dir

EXAMPLES = """
  edgeclip distill --recipe digits-kd                                   # proxy CLIP + MLP head -> MobileNetV3-small
  edgeclip distill --recipe digits-kd --student resnet18_w8 --shots 10  # low-shot: 10 train images per class
  edgeclip distill --recipe digits-kd --teacher cnn:resnet34@0.5 --scratch   # CE-trained CNN teacher + from-scratch baseline
  edgeclip distill --recipe digits-kd --set distill.epochs=5 --out runs/quick
  edgeclip distill --recipe digits-kd --out runs/quick --resume         # continue an interrupted run
  edgeclip distill --recipe imagenet-kd --data /data/imagenet100 --teacher ViT-B-32:openai

DistillCLIP (paper 001: a small dual encoder that keeps zero-shot):
  edgeclip distill --recipe distillclip-digits                          # proxy-digits-large -> distillclip_digits
  edgeclip distill --recipe distillclip-digits --pairs shards/shard-{000000..000007}.tar
  edgeclip distill --recipe distillclip-paper --teacher ViT-B-32:/models/vitb32.pt --pairs /data/cc3m/{00000..00331}.tar
  torchrun --nproc_per_node 2 -m edgeclip distill --recipe distillclip-digits --pairs shards/   # DDP, shards per rank
Data-free (paper 002: class names only -> synthetic images -> KD; recipe digits-datafree by default):
  edgeclip distill --method data-free --classes "zero,one,two,three,four,five,six,seven,eight,nine"
  edgeclip distill --method data-free --classes-file classes.txt --prompt mix --teacher ViT-B-32:openai --set "data.test=''"
  edgeclip distill --recipe datafree-paper --classes "dog,elephant,horse,house,person" --teacher ViT-B-32:/ckpt/clip.pt --data /data/pacs/photo
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_parser(
        subparsers, "distill", help="distill a teacher into a small classifier (Hinton KD) or dual encoder (DistillCLIP)",
        description=(
            "Train a classifier student with L = alpha*tau^2*KL(teacher || student) + beta*CE (paper 000). "
            "The teacher (frozen CLIP + MLP head fine-tuned here, raw zero-shot CLIP, or a CNN trained here with "
            "cross-entropy) runs once per image; its outputs are cached. Writes <out>/student (a checkpoint for "
            "`edgeclip export`), <out>/teacher, resumable <out>/checkpoints, and <out>/result.json + result.md. "
            "Recipes with distill.method=distillclip (paper 001) train a dual encoder on image-caption pairs instead, "
            "matching the teacher's inter- and intra-modal similarity maps; under torchrun each rank reads its own shards. "
            "--method data-free (paper 002) needs only class names: it synthesizes images from the CLIP teacher "
            "(<out>/synthetic/<prompt>/: images, synthetic.json, contact sheets), then distills on them."
        ),
        examples=EXAMPLES,
    )
    add_recipe_arguments(parser)
    parser.add_argument("--teacher", default=None,
                        help="proxy-digits | ARCH:TAG | ARCH:/ckpt | cnn:ARCH[@WIDTH] | a saved teacher dir; None = recipe")
    parser.add_argument("--method", default=None, help="distillation method (edgeclip list methods); None = the recipe's distill.method")
    parser.add_argument("--student", default=None, help="registered student (edgeclip list students)")
    parser.add_argument("--data", default=None, help="data spec for train and test: digits, synthetic[:N] or a folder")
    parser.add_argument("--test-data", default=None, help="separate test data spec; None = --data")
    parser.add_argument("--pairs", default=None,
                        help="distillclip: image-caption pairs: digits[:K], a path,caption CSV, or webdataset shards")
    parser.add_argument("--text-init", choices=["strict", "skip", "off"], default=None,
                        help="distillclip: init student text layer i from teacher layer 2i; strict = exit 2 when impossible, "
                             "skip = say what was skipped and continue")
    parser.add_argument("--shots", type=int, default=None, metavar="K", help="K train images per class (0 = all); test split unchanged")
    parser.add_argument("--epochs", type=int, default=None, help="override distill.epochs")
    parser.add_argument("--scratch", action="store_true", help="also train the student from scratch (CE only, same budget)")
    parser.add_argument("--out", default=None, help="run directory; None = runs/<recipe>-<student>-<time>")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/*/last.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    datafree = parser.add_argument_group("data-free (--method data-free, paper 002)")
    datafree.add_argument("--classes", default=None, help='comma-separated class names, e.g. "cat,dog,horse"')
    datafree.add_argument("--classes-file", default=None, metavar="FILE", help="class names, one per line")
    datafree.add_argument("--prompt", default=None, help="prompt diversification: plain | mix | random | contrastive")
    datafree.add_argument("--generator", default=None, help="image generator: pixel | fourier | a registered one")
    datafree.add_argument("--styles", default=None, metavar="FILE", help="style dictionary YAML for --prompt mix (default: shipped Table 8)")
    # No --recipe: quickstart, or the method's own recipe (--method data-free → digits-datafree).
    parser.set_defaults(func=run, recipe=None)


def distill_recipe(args: argparse.Namespace):  # -> edgeclip.config.Recipe
    """`recipe_from_args` plus the method's default recipe and the data-free flags."""
    import json

    args = argparse.Namespace(**vars(args))  # the caller's namespace stays as parsed
    if not getattr(args, "recipe", None):
        # lazy: `edgeclip --help` does not load it
        from edgeclip.distill.methods import get_method

        args.recipe = (get_method(args.method).default_recipe if getattr(args, "method", None) else "") or "quickstart"
    overrides = list(getattr(args, "overrides", []))
    if getattr(args, "classes", None) is not None and getattr(args, "classes_file", None):
        raise UserError("give the class names once: --classes \"a,b,c\" or --classes-file FILE, not both")
    if getattr(args, "classes", None) is not None:
        # lazy: `edgeclip --help` does not load it
        from edgeclip.distill.datafree.classes import parse_class_list

        # JSON is YAML: names with commas, quotes or colons survive the --set parser intact.
        overrides += [f"datafree.classes={json.dumps(parse_class_list(args.classes))}", 'datafree.classes_file=""']
    if getattr(args, "classes_file", None):
        overrides += [f"datafree.classes_file={json.dumps(args.classes_file)}", "datafree.classes=[]"]
    for flag, key in (("prompt", "prompt"), ("generator", "generator"), ("styles", "styles_file")):
        if getattr(args, flag, None):
            overrides.append(f"datafree.{key}={json.dumps(getattr(args, flag))}")
    args.overrides = overrides
    return recipe_from_args(args)


def run(args: argparse.Namespace) -> int:
    # lazy: `edgeclip --help` does not load it (torch)
    from edgeclip.distill.methods import get_method, run_distillation
    from edgeclip.distill.results import RESULT_MD

    recipe = distill_recipe(args)
    get_method(recipe.distill.method)  # an unknown method fails before anything else
    if not args.out and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError("under torchrun pass --out DIR so every rank uses the same run directory")
    shots = f"k{recipe.data.shots}" if recipe.data.shots else ""
    out = Path(args.out) if args.out else default_run_dir(recipe.name, recipe.student.name, shots)
    check_output_dir(out, "run directory")  # before the teacher trains
    result = run_distillation(recipe, out_dir=out, progress=not args.quiet, resume=args.resume)
    if os.environ.get("RANK", "0") != "0":
        return 0  # a torchrun rank other than 0: rank 0 writes and prints the result
    print((result.run_dir / RESULT_MD).read_text())
    print(f"run directory: {result.run_dir}")
    if recipe.distill.method == "distillclip":
        print(f"next: edgeclip eval --model {result.checkpoint_dir} --suite zero-shot,linear-probe,shift,retrieval")
        print(f"      edgeclip export --model {result.checkpoint_dir} --tower fused --backend onnx --precision fp32")
        return 0
    print(f"next: edgeclip export --model {result.checkpoint_dir} --backend onnx --precision fp32")
    return 0
