"""`edgeclip eval`: student vs teacher on the same test data, and the capacity-gap analysis."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgeclip.commands import add_parser, add_recipe_arguments, recipe_from_args
from edgeclip.config import load_recipe
from edgeclip.errors import UserError
from edgeclip.io_utils import atomic_path, write_json
from edgeclip.paths import default_run_dir

EXAMPLES = """
  edgeclip eval --model runs/<id>/student                      # teacher = runs/<id>/teacher, data = digits
  edgeclip eval --model runs/<id>/student --data my_images/ --teacher runs/<id>/teacher
  edgeclip eval --model runs/<id>/student --data digit_folders/ --class-map 0=zero,1=one,2=two,3=three,4=four,5=five,6=six,7=seven,8=eight,9=nine
  edgeclip eval --model runs/<id>/student --teacher proxy-digits   # raw zero-shot CLIP as the reference
  edgeclip eval --analysis capacity-gap --recipe digits-kd --student resnet18_w8 \\
      --teacher proxy-digits --teacher cnn:resnet18@0.5 --teacher cnn:resnet34@0.5
  edgeclip eval --analysis capacity-gap --runs runs/a runs/b runs/c   # table from finished distill runs
  edgeclip eval --model runs/<id>/student --suite zero-shot,linear-probe,shift,retrieval   # DistillCLIP dual encoder
  edgeclip eval --model runs/<id>/student --suite shift --shift-data photos_of_digits/ --latency-backends none
  edgeclip eval --model runs/<id>/student --data cifar10 --suite shift --shift-images 2000   # corruptions x severities
"""

ANALYSES = ("capacity-gap",)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_parser(
        subparsers, "eval", help="accuracy, retention and agreement of a student vs its teacher; capacity-gap analysis",
        description=(
            "Evaluate a student checkpoint on the test split: top-1 of student and teacher on the same images, retention "
            "(= student / teacher top-1), top-1 agreement with the teacher and the teacher's over-confidence p, beside the "
            "majority-class and chance baselines, the prediction spread, per-class accuracy and the confusion matrix; the "
            "verdict flags numbers that mean little (near a baseline, degenerate predictions, retention of a near-chance "
            "teacher). Data classes are matched to the model's by name (--class-map for folders named otherwise). "
            "With --analysis capacity-gap: distill one student from several teachers (or read finished --runs) and "
            "print + save the table (params, param gap, teacher top-1, p, student top-1, from-scratch baseline)."
        ),
        examples=EXAMPLES,
    )
    add_recipe_arguments(parser)
    parser.add_argument("--model", default=None, help="student checkpoint directory (runs/<id>/student)")
    parser.add_argument("--data", default=None, help="test data spec; None = the recipe's data.test")
    parser.add_argument("--class-map", default=None, metavar="MAP",
                        help="folder name -> model class name, when they differ: 'a=b,c=d' (e.g. 0=zero,1=one) or a "
                             "YAML/JSON file; None = the recipe's data.classname_map. Classes are matched by name.")
    parser.add_argument("--teacher", action="append", default=[],
                        help="teacher: a saved teacher dir, cnn:ARCH:/dir, or a CLIP spec (zero-shot); repeat for capacity-gap")
    parser.add_argument("--analysis", choices=ANALYSES, default=None, help="run an analysis instead of a single evaluation")
    parser.add_argument("--student", default=None, help="capacity-gap: the student to distill; None = recipe")
    parser.add_argument("--shots", type=int, default=None, metavar="K", help="capacity-gap: K train images per class")
    parser.add_argument("--epochs", type=int, default=None, help="capacity-gap: override distill.epochs")
    parser.add_argument("--runs", nargs="+", default=None, metavar="RUN", help="capacity-gap: finished distill run directories")
    parser.add_argument("--gamma", type=float, default=None, help="over-confidence threshold γ; None = recipe, 0.5")
    parser.add_argument("--out", default=None, help="where eval.json/.md or capacity_gap.json/.md go")
    parser.add_argument("--resume", action="store_true", help="capacity-gap: continue interrupted runs in --out")
    parser.add_argument("--suite", default=None,
                        help="dual encoders: comma-separated suites zero-shot,linear-probe,shift,retrieval (default: all)")
    parser.add_argument("--shift-data", action="append", default=[], metavar="FOLDER",
                        help="dual encoders: a folder of class folders (same classes) evaluated as a distribution shift; repeatable")
    parser.add_argument("--shift-set", default="auto", choices=("auto", "corruptions", "synthetic"),
                        help="dual encoders: shift suite's images: CIFAR-10-C-style corruptions x severities 1..5 (photos), "
                             "synthetic shifts (digits); auto picks by the data")
    parser.add_argument("--shift-images", type=int, default=None, metavar="N",
                        help="dual encoders: evaluate the corruptions on a seeded class-stratified subset of N test images "
                             "(a full pass is 50x the test set per model); default all")
    parser.add_argument("--latency-backends", default="torch,onnx,openvino",
                        help="dual encoders: backends for the per-tower latency table (fp32, batch 1, interleaved); 'none' skips")
    parser.add_argument("--templates", default=None, help="dual encoders: prompt template set; None = the one recorded with the model")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.analysis == "capacity-gap":
        return _capacity_gap(args)
    if not args.model:
        raise UserError("edgeclip eval needs --model runs/<id>/student (or --analysis capacity-gap)")
    return _evaluate(args)


def _capacity_gap(args: argparse.Namespace) -> int:
    # lazy: `edgeclip --help` does not load it (torch)
    from edgeclip.distill.capacity_gap import CAPACITY_JSON, render_markdown, rows_from_runs, run_capacity_gap, write_capacity_gap

    if args.runs:
        if args.teacher:
            raise UserError("give either --runs (finished runs) or --teacher (run the analysis), not both")
        rows, gamma = rows_from_runs(args.runs)
        out = Path(args.out) if args.out else Path(args.runs[0]).parent
        write_capacity_gap(out, rows, {"runs": [str(r) for r in args.runs], "gamma": gamma})
    else:
        if not args.teacher:
            raise UserError("capacity-gap needs teachers: --teacher proxy-digits --teacher cnn:resnet18@0.5 ... (or --runs)")
        args.scratch = False
        if args.gamma is not None:
            args.overrides = list(args.overrides) + [f"distill.overconfidence_gamma={args.gamma}"]
        # lazy: `edgeclip --help` does not load it

        recipe = recipe_from_args(argparse.Namespace(**{**vars(args), "teacher": None}))  # teachers run one by one
        out = Path(args.out) if args.out else default_run_dir("capacity-gap", recipe.student.name)
        rows, meta = run_capacity_gap(recipe, args.teacher, out_dir=out, progress=not args.quiet, resume=args.resume)
        gamma = meta["gamma"]
    print(render_markdown(rows, gamma))
    print(f"saved: {out / CAPACITY_JSON}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    # lazy: `edgeclip --help` does not load it (torch)
    from edgeclip.data import open_image_dataset
    from edgeclip.distill.augment import eval_view
    from edgeclip.distill.classifier_kd import evaluate_logits
    from edgeclip.bench.qualify import qualify_predictions
    from edgeclip.data.class_match import align_classes, parse_class_map, teacher_columns
    from edgeclip.distill.trainer import predict_logits
    from edgeclip.students.checkpoint import load_checkpoint

    recipe = load_recipe(args.recipe, args.overrides)
    model_dir = Path(args.model)
    model, spec, info = load_checkpoint(model_dir)
    if spec.kind == "dual_encoder":
        # lazy: `edgeclip --help` does not load it
        from edgeclip.eval.command import evaluate_dual_encoder

        return evaluate_dual_encoder(args, model, spec, model_dir)
    if args.suite:
        raise UserError(f"--suite evaluates dual encoders; {model_dir} is a {spec.kind} (drop --suite)")
    if spec.kind != "classifier":
        raise UserError(f"{model_dir} is a {spec.kind}; edgeclip eval compares classifiers (use `edgeclip bench` for encoders)")
    data_spec = args.data or spec.extra.get("data") or recipe.data.test
    class_map = parse_class_map(args.class_map if args.class_map is not None else recipe.data.classname_map)
    # Matched by name: a folder's classes are sorted alphabetically, the model's are in training order.
    test = align_classes(open_image_dataset(data_spec, "test", skip_corrupt=recipe.data.skip_corrupt), spec.class_names,
                         class_map, what=f"data {data_spec}", model=f"student {model_dir}")
    teachers = args.teacher or ([str(model_dir.parent / "teacher")] if (model_dir.parent / "teacher").is_dir() else [])
    if len(teachers) > 1:
        raise UserError("edgeclip eval takes one --teacher (several teachers: --analysis capacity-gap)")
    teacher = _open_eval_teacher(teachers[0], test, recipe, spec.preprocess) if teachers else None
    columns = teacher_columns(teacher.class_names, spec.class_names, teacher.name) if teacher is not None else None

    student_logits = predict_logits(model, eval_view(test, spec.preprocess))
    gamma = args.gamma if args.gamma is not None else recipe.distill.overconfidence_gamma
    labels = list(test.labels)
    teacher_predicted = None
    if teacher is not None:
        teacher_logits = teacher.logits(test).float()[:, columns]
        metrics: dict[str, Any] = evaluate_logits(teacher_logits, student_logits, labels, gamma)
        metrics["teacher"] = teacher.name
        teacher_predicted = teacher_logits.argmax(1).numpy()
    else:
        # lazy: `edgeclip --help` does not load it
        from edgeclip.bench.metrics import top1_accuracy

        metrics = {"student_accuracy": top1_accuracy(student_logits, labels), "teacher": None}
    metrics.update({"student": info["student_name"], "model": str(model_dir), "data": test.identity, "test_images": len(test),
                    "class_names": list(spec.class_names), "class_map": class_map})
    metrics["qualifiers"] = qualify_predictions(labels, student_logits.argmax(1).numpy(), spec.class_names,
                                                teacher_predicted=teacher_predicted, retention=metrics.get("retention"))
    out = Path(args.out) if args.out else model_dir.parent
    write_json(out / "eval.json", metrics)
    with atomic_path(out / "eval.md") as tmp:
        tmp.write_text(_eval_markdown(metrics))
    print(_eval_markdown(metrics))
    print(f"saved: {out / 'eval.json'}")
    return 0


def _open_eval_teacher(spec: str, test: Any, recipe: Any, student_preprocess: Any) -> Any:
    # lazy: `edgeclip --help` does not load it (torch)
    from edgeclip.distill.teachers import open_teacher

    source = open_teacher(spec, "zero_shot")  # a CLIP spec is evaluated with its zero-shot head
    if source.needs_training:
        raise UserError(f"teacher '{spec}' would have to be trained first; pass a trained one (runs/<id>/teacher or cnn:ARCH:/dir)")
    return source.prepare(recipe, test, student_preprocess=student_preprocess, checkpoint_dir=None, resume=False,
                          progress=False)


def _eval_markdown(m: dict[str, Any]) -> str:
    # lazy: `edgeclip --help` does not load it
    from edgeclip.bench.qualify import confusion_markdown
    from edgeclip.utils import fmt

    q = m["qualifiers"]
    base = q["baselines"]
    lines = [f"# Evaluation of {m['student']} on {m['data']} ({m['test_images']} images)", "",
             "| model | top-1 (%) |", "|---|---:|", f"| student {m['student']} | {fmt(m['student_accuracy'], True)} |"]
    if m.get("teacher"):
        lines.append(f"| teacher {m['teacher']} | {fmt(m['teacher_accuracy'], True)} |")
    lines += [f"| baseline: majority class ({base['majority_class']}) | {fmt(base['majority'], True)} |",
              f"| baseline: chance (1/{len(m['class_names'])}) | {fmt(base['chance'], True)} |"]
    spread = q["student_predictions"]
    lines += ["", f"Student predictions: {spread['classes_predicted']} of {len(m['class_names'])} classes, entropy "
                  f"{spread['entropy_bits']:.2f} of {spread['max_entropy_bits']:.2f} bits; most predicted "
                  f"'{spread['top_class']}' ({spread['top_class_share']:.0%})."]
    if m.get("teacher"):
        lines += ["", f"Retention: {fmt(m['retention'])}. Agreement with the teacher: {fmt(m['agreement'], True)}%. "
                      f"Teacher over-confidence p (γ={m['overconfidence_gamma']}): {fmt(m['teacher_overconfidence_p'])}."]
    if m.get("class_map"):
        lines += ["", "Class map (folder → class): " + ", ".join(f"{a} → {b}" for a, b in m["class_map"].items()) + "."]
    lines += ["", "Per-class accuracy of the student and its confusion matrix (rows: true class, columns: predicted):", ""]
    lines += confusion_markdown(q["confusion"], m["class_names"], q["per_class_accuracy"])
    lines += ["", "**Verdict:** " + (" ".join(f"⚠ {flag}." for flag in q["flags"]) if q["flags"] else
                                     "the accuracy is clear of the chance and majority baselines and the predictions spread over the classes.")]
    return "\n".join(lines) + "\n"
