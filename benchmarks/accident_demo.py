"""Dashcam accident recognition (paper 001 §3.3.5) on the real clips here: accuracy per encoder, speed per artifact.

Part 1, accuracy: the 10 DAD demo clips + the 8 dashcam clips (CCD crash / CCD normal / highway),
labelled windows by the protocol in edgeclip/video/clips.py, 5-fold cross-validation BY CLIP
(pooled out-of-fold metrics; 3 seeds for the PyTorch encoders). Encoders, as teacher/student pairs:
- DistillCLIP (paper 001): the proxy-digits-large CLIP image tower vs the distillclip_digits image
  tower distilled from it (recipe distillclip-digits; --distillclip-run reuses a finished run);
- KD classifier (paper 000): the proxy-digits CLIP image tower vs the ResNet18-1/8 distilled from it
  by Hinton KD (recipe quickstart; --kd-run reuses a finished run), backbone features;
- each exported variant of all four (ONNX Runtime / OpenVINO, fp32 / int8) through edgeclip.runtimes;
- random-weight 224² towers (DistillCLIP MobileNetV3, OpenAI ViT-B/32 architecture): they know nothing.
None of them knows roads (the CLIPs here were trained on digits). Retention = student pipeline /
its pair's teacher pipeline, same head, metric and seeds (paper 001: 99.34%).

Part 2, speed: the device demo (edgeclip/video/accident_demo) end to end on a 640×360 H.264 video
(decode + letterbox + encoder + head, no annotated video), at the paper's stride (window of 8 frames
14 apart: 1 frame in 14 encoded) and with every frame encoded; every configuration once per round,
rounds interleaved, medians reported.

    python benchmarks/accident_demo.py --out benchmarks/results/accident_demo --work runs/bench-accident

Already-trained students and a shared CPU (what the committed file used, see its command):
    python benchmarks/accident_demo.py ... --distillclip-run runs/distillclip-digits --kd-run RUN \
        --vit-speed-variants onnx-fp32,openvino-int8
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from edgeclip.bench.environment import collect_environment
from edgeclip.config import load_recipe
from edgeclip.distill.reuse import reusable_run
from edgeclip.io_utils import write_json
from edgeclip.video.clips import LabelProtocol
from edgeclip.video.dataset import build_dataset
from edgeclip.video.features import load_encoder
from edgeclip.video.sampling import WindowSampling
from edgeclip.video.train import HeadTrainConfig, cross_validate

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CLIPS = [REPO / "benchmarks" / "clips" / "dad-demo.txt", SHARED / "dashcam-clips"]
VARIANTS = [("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "int8")]
METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "average_precision")


def log(message: str) -> None:
    print(f"[accident bench] {message}", file=sys.stderr, flush=True)


def adopt_run(source: Path, target: Path, recipe_name: str) -> dict:
    """Use an already-trained student: `source` (a run directory with result.json and student/) must
    have been made by `recipe_name` as it reads today; it is copied to `target` in --work (the
    benchmark's own copy) and described in the result file. Exits 2 when it was made otherwise."""
    import hashlib
    import shutil

    model = source / "student" / "model.pt"
    found = reusable_run(source, load_recipe(recipe_name))  # edgeclip's one reuse rule
    if not found.reusable or not model.is_file():
        raise SystemExit(f"error: {source} is not a finished run of today's recipe {recipe_name} "
                         f"({found.reason or 'student/model.pt missing'}); leave the option out to distill the student here")
    earlier = found.result
    digest = hashlib.sha256(model.read_bytes()).hexdigest()[:16]
    if not (target / "student" / "model.pt").is_file() or \
            hashlib.sha256((target / "student" / "model.pt").read_bytes()).hexdigest()[:16] != digest:
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in ("student", "teacher"):
            if (source / name).is_dir():
                shutil.copytree(source / name, target / name)
        for name in ("result.json", "result.md"):
            if (source / name).is_file():
                shutil.copyfile(source / name, target / name)
    metrics = {k: v for k, v in (earlier.get("metrics") or {}).items() if isinstance(v, (int, float))}
    log(f"reusing the {recipe_name} student of {source} (model.pt sha256 {digest})")
    return {"source": str(source.resolve()), "recipe": recipe_name, "model_sha256_16": digest,
            "train_seconds": earlier.get("seconds"), "metrics": metrics}


def kd_student(work: Path) -> Path:
    """ResNet18-1/8 distilled from the proxy teacher (quickstart recipe); reused when present."""
    checkpoint = work / "kd-student" / "student"
    if not reusable_run(work / "kd-student", load_recipe("quickstart")).reusable:
        from edgeclip.distill.methods import run_distillation

        log("distilling the KD student (quickstart recipe)")
        run_distillation(load_recipe("quickstart"), out_dir=work / "kd-student", progress=False)
    return checkpoint


def distillclip_student(work: Path) -> Path:
    """The DistillCLIP dual encoder distilled from proxy-digits-large (recipe distillclip-digits); reused when present."""
    checkpoint = work / "distillclip" / "student"
    if not reusable_run(work / "distillclip", load_recipe("distillclip-digits")).reusable:
        from edgeclip.distill.methods import run_distillation

        log("distilling the DistillCLIP student (distillclip-digits recipe)")
        run_distillation(load_recipe("distillclip-digits"), out_dir=work / "distillclip", progress=False)
    return checkpoint


def export_variants(encoder, name: str, work: Path, frames: np.ndarray) -> dict[str, Path]:
    """The encoder as an artifact per (backend, precision), calibrated on real letterboxed dashcam frames."""
    from edgeclip.video.export import encoder_spec

    out = {}
    for backend, precision in VARIANTS:
        directory = work / "artifacts" / f"{name}-{backend}-{precision}"
        if not (directory / "manifest.json").is_file():
            from edgeclip.exporters import export_model

            log(f"exporting {name} {backend}-{precision}")
            export_model(encoder.module, encoder_spec(encoder), backend, precision, directory,
                         calibration=frames if precision == "int8" else None, parity_inputs=frames[:16])
        out[f"{backend}-{precision}"] = directory
    return out


def accuracy_rows(label: str, role: str, encoder, work: Path, heads: list[str], seeds: list[int], epochs: int,
                  folds: int, pair: str = "", variant: str = "pytorch") -> list[dict]:
    sampling, protocol = WindowSampling(frames=8, stride=2), LabelProtocol()
    dataset = build_dataset(CLIPS, encoder, sampling, protocol, progress=False)
    rows = []
    for head in heads:
        runs = []
        for seed in ([0] if head == "zero-shot" else seeds):
            config = HeadTrainConfig(head=head, epochs=epochs, folds=folds, seed=seed)
            started = time.perf_counter()
            result = cross_validate(dataset, config, work / "cv" / f"{label}-{head}-s{seed}", encoder=encoder,
                                    progress=False)
            runs.append({**{m: result["pooled"][m] for m in METRICS}, "seed": seed,
                         "by_source": by_source(dataset, result["out_of_fold_probabilities"]),
                         "clip_accuracy": result["alerts"]["clip_accuracy"],
                         "detected": result["alerts"]["detected"], "positive_clips": result["alerts"]["positive_clips"],
                         "normal_without_alert": result["alerts"]["normal_clips_without_alert"],
                         "normal_clips": result["alerts"]["normal_clips"],
                         "tta_mean_s": result["alerts"]["time_to_accident_s"]["mean"],
                         "seconds": round(time.perf_counter() - started, 1)})
            log(f"{label} {head} seed {seed}: " + ", ".join(f"{m} {runs[-1][m]:.3f}" for m in METRICS))
        rows.append({"encoder": label, "role": role, "pair": pair, "variant": variant, "encoder_name": encoder.name, "knows": encoder.knows,
                     "embed_dim": encoder.embed_dim, "input": encoder.preprocess.size, "head": head,
                     "seeds": [r["seed"] for r in runs], "runs": runs, "counts": dataset.describe()["counts"],
                     **{m: statistics.mean(r[m] for r in runs) for m in METRICS},
                     **{f"{m}_std": statistics.pstdev(r[m] for r in runs) for m in METRICS},
                     "by_source": {source: {k: statistics.mean(r["by_source"][source][k] for r in runs)
                                            for k in ("balanced_accuracy", "roc_auc")}
                                   for source in runs[0]["by_source"]}})
    return rows


def by_source(dataset, probabilities: list[float]) -> dict[str, dict]:
    """Out-of-fold metrics within each clip list: the label is confounded with the source when pooled
    (most accident windows come from CCD, most normal ones from DAD), so within-source numbers show
    whether a head ranks accident windows above normal ones of the same camera and dataset."""
    from edgeclip.video.metrics import window_metrics

    def source_of(clip: int) -> str:  # "dad-demo" (benchmarks/clips/dad-demo.txt), "dashcam-clips" (…/labels.txt)
        listing = Path(dataset.entries[clip].where.rsplit(":", 1)[0])
        return listing.parent.name if listing.name == "labels.txt" else listing.stem

    sources = np.asarray([source_of(w.clip) for w in dataset.windows])
    labels, scores = dataset.labels, np.asarray(probabilities)
    out = {}
    for source in sorted(set(sources)):
        mask = sources == source
        metrics = window_metrics(labels[mask], scores[mask])
        out[source] = {k: metrics[k] for k in ("windows", "accident_windows", "balanced_accuracy", "roc_auc")}
    return out


def add_retention(rows: list[dict]) -> None:
    """Each row of a teacher/student pair against the pair's teacher (PyTorch) row with the same head."""
    teachers = {(r["pair"], r["head"]): r for r in rows if r["role"] == "teacher" and r["pair"] and r["variant"] == "pytorch"}
    for row in rows:
        base = teachers.get((row["pair"], row["head"]))
        row["retention"] = {m: (row[m] / base[m] if base and base[m] else None) for m in METRICS}


def demo_video(work: Path, clips: int) -> Path:
    """A 640×360 H.264 video of the first DAD clips back to back (20 fps), like a dashcam stream."""
    import av
    from PIL import Image

    path = work / f"dad-{clips}clips-640x360.mp4"
    if path.is_file():
        return path
    folders = sorted(p for p in (SHARED / "dad-demo").iterdir() if p.is_dir())[:clips]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=20, options={"crf": "23"})
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for folder in folders:
            for frame in sorted(folder.glob("*.jpg")):
                image = av.VideoFrame.from_image(Image.open(frame).convert("RGB"))
                for packet in stream.encode(image):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def speed_model(encoder, artifact: Path, backend: str, precision: str, work: Path) -> Path:
    """A model dir for timing: this encoder artifact + an (untrained) EVL head on 8 frames 14 apart (the paper's)."""
    import shutil

    from edgeclip.video.export import export_head, write_model_config
    from edgeclip.video.heads import create_head

    model_dir = work / "speed-models" / artifact.name
    if (model_dir / "accident_model.json").is_file():
        return model_dir
    sampling = WindowSampling(frames=8, stride=14)
    target = model_dir / "artifacts" / f"encoder-{backend}-{precision}"
    if not target.exists():
        shutil.copytree(artifact, target)
    head = create_head("evl", sampling.frames, encoder.embed_dim)
    windows = np.random.default_rng(0).standard_normal((8, sampling.frames, encoder.embed_dim)).astype(np.float32)
    export_head(head, "evl", sampling, encoder, model_dir, backend, windows)
    write_model_config(model_dir, encoder, "evl", {}, sampling, 0.5, "speed only (untrained head)", 20.0)
    return model_dir


def speed_rows(configs: list[tuple[str, str, Path]], video: Path, rounds: int, max_frames: int) -> list[dict]:
    from edgeclip.video.accident_demo import run_demo

    modes = {"paper stride (1 in 14 frames encoded)": 14, "every frame encoded": 1}
    samples: dict[tuple[str, str, str], list[dict]] = {}
    for round_index in range(rounds):  # interleaved: every configuration once per round
        for label, variant, model_dir in configs:
            for mode, hop in modes.items():
                summary = run_demo(str(model_dir), video=str(video), backend=variant.split("-")[0],
                                   precision=variant.split("-")[1], out_dir=str(model_dir / "out"), hop=hop,
                                   write_video=False, max_frames=max_frames, log=lambda message: None)
                samples.setdefault((label, variant, mode), []).append(summary)
        log(f"speed round {round_index + 1}/{rounds} done")
    rows = []
    for (label, variant, mode), runs in samples.items():
        lat = [r["latency_ms"] for r in runs]
        rows.append({"encoder": label, "variant": variant, "mode": mode, "frames": runs[0]["frames"],
                     "encoded_frames": runs[0]["encoded_frames"], "windows": runs[0]["windows"],
                     "fps": statistics.median(r["end_to_end_fps"] for r in runs),
                     "fps_runs": [round(r["end_to_end_fps"], 2) for r in runs],
                     "per_frame_p50_ms": statistics.median(x["per_frame"]["p50"] for x in lat),
                     "per_frame_p90_ms": statistics.median(x["per_frame"]["p90"] for x in lat),
                     "decode_ms": statistics.median(x["decode"]["mean"] for x in lat),
                     "letterbox_ms": statistics.median(x["preprocess"]["mean"] for x in lat),
                     "encoder_p50_ms": statistics.median(x["encoder"]["p50"] for x in lat),
                     "head_p50_ms": statistics.median(x["head"]["p50"] for x in lat)})
    return rows


def fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def markdown(result: dict) -> str:
    meta, env = result["meta"], result["environment"]
    lines = [
        "# Dashcam accident recognition: accuracy per encoder (CV by clip) and demo speed (640×360 video)", "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['created']}; machine: {env['cpu']}, {env['cores_usable']} usable cores (shared with other jobs: "
        f"load average {meta['load_average']}); torch {env['versions'].get('torch')}, onnxruntime "
        f"{env['versions'].get('onnxruntime')}, openvino {env['versions'].get('openvino')}; wall time {meta['minutes']:.1f} min.", "",
        "## Data and labelled protocol", "",
        f"Real clips: {result['data']['clips']} clips — 10 DAD demo clips (100 frames, 640×360, 20 fps, accident in the "
        "last 10 frames), 4 CCD crash clips with the annotated onset frame, 2 CCD normal clips, 2 normal highway videos "
        "(../shared/data, see its PROVENANCE files). Frames letterboxed to the encoder's input (never centre-cropped).",
        f"Windows: 8 frames, 2 apart (15 frames long). Protocol: {result['protocol']}.",
        f"Labelled windows: {result['data']['counts']['windows']} ({result['data']['counts']['accident']} accident, "
        f"{result['data']['counts']['normal']} normal). {meta['folds']}-fold cross-validation by clip (no clip on both "
        f"sides, checked in code), metrics pooled over out-of-fold predictions, mean of seeds {meta['seeds']} for "
        f"trained heads; AdamW 4e-4, wd 5e-2, cosine, batch 8, accumulation 16, {meta['epochs']} epochs. Accuracy at "
        "threshold 0.5; chance: balanced accuracy 0.5, ROC-AUC 0.5, AP = share of accident windows "
        f"({result['data']['counts']['accident'] / result['data']['counts']['windows']:.3f}); always-normal accuracy "
        f"{result['data']['counts']['normal'] / result['data']['counts']['windows']:.3f}.", "",
        "**No encoder here knows roads.** The teacher is the proxy CLIP trained on 8×8 handwritten digits; the student "
        "is distilled from it on digits; the 224² towers have random weights. What a head learns on their frozen "
        "features comes from coarse appearance/motion statistics. With a real CLIP checkpoint "
        "(`--encoder ViT-B-32:/path/to/openai.pt`) the same commands give the paper's setting.", "",
        "## Accuracy (pooled out-of-fold, mean ± std over seeds)", "",
        "| pair | encoder | knows | head | accuracy | balanced acc. | ROC-AUC | AP | clips detected | normal clips w/o alert | retention (bal. acc. / AUC) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["accuracy"]:
        first = r["runs"][0]
        ret = r["retention"]
        lines.append(
            f"| {r.get('pair') or '-'} | {r['encoder']} | {r['knows']} | {r['head']} | {fmt(r['accuracy'])} ± {fmt(r['accuracy_std'])} "
            f"| {fmt(r['balanced_accuracy'])} ± {fmt(r['balanced_accuracy_std'])} | {fmt(r['roc_auc'])} ± {fmt(r['roc_auc_std'])} "
            f"| {fmt(r['average_precision'])} | {first['detected']}/{first['positive_clips']} | "
            f"{first['normal_without_alert']}/{first['normal_clips']} | {fmt(ret['balanced_accuracy'])} / {fmt(ret['roc_auc'])} |")
    sources = list(result["accuracy"][0]["by_source"]) if result["accuracy"] else []
    counts = result["accuracy"][0]["runs"][0]["by_source"] if result["accuracy"] else {}
    lines += ["", "Within each source (out-of-fold scores of the same runs; the pooled numbers mix a source confound: "
              + "; ".join(f"{s}: {counts[s]['windows']} windows, {counts[s]['accident_windows']} accident" for s in sources)
              + "):", "",
              "| encoder | head | " + " | ".join(f"{s} bal. acc. | {s} ROC-AUC" for s in sources) + " |",
              "|---|---|" + "---:|---:|" * len(sources)]
    for r in result["accuracy"]:
        lines.append(f"| {r['encoder']} | {r['head']} | " + " | ".join(
            f"{fmt(r['by_source'][s]['balanced_accuracy'])} | {fmt(r['by_source'][s]['roc_auc'])}" for s in sources) + " |")
    if counts:
        dad, ccd = counts.get("dad-demo"), counts.get("dashcam-clips")
        if dad and ccd:
            above = [f"{r['encoder']} + {r['head']} (ROC-AUC {fmt(r['roc_auc'])})" for r in result["accuracy"]
                     if all(run["roc_auc"] > 0.5 for run in r["runs"]) and len(r["runs"]) > 1]
            lines += ["", "Reading these numbers: "
                      + (f"only {', '.join(above)} stay above 0.5 on every seed; " if above else "no row is above chance on every seed; ")
                      + f"pooled ROC-AUCs below 0.5 are a "
                      f"source confound of this protocol, not skill in reverse: {ccd['accident_windows']} of the "
                      f"{ccd['accident_windows'] + dad['accident_windows']} accident windows come from the dashcam clips "
                      f"(CCD), {dad['windows'] - dad['accident_windows']} of the "
                      f"{dad['windows'] - dad['accident_windows'] + ccd['windows'] - ccd['accident_windows']} normal ones "
                      "from DAD, so a head that learns which dataset a window comes from ranks held-out CCD normal clips "
                      "above held-out DAD accident windows. Within one source the same scores sit nearer 0.5. Retention "
                      "ratios of near-chance numbers carry no information; what this file shows is that the pipeline, "
                      "its exported variants (which track the PyTorch features: same folds, near-identical scores) and "
                      "the demo run end to end on real clips, and how fast."]
    lines += ["", "Clip columns: seed 0, sliding window over each held-out clip (hop 2); a crash clip is detected when its "
              "first alert comes no earlier than 1 s before the onset. Retention: this row / its pair's teacher "
              "(PyTorch) row with the same head (paper 001 reports 99.34% for CLIP → DistillCLIP with EVL).", "",
              "## Speed of the device demo (median of interleaved rounds)", "",
              f"Video: {meta['video']} (640×360 H.264, 20 fps), first {meta['speed_frames']} frames; "
              f"{meta['rounds']} rounds. FPS = decoded frames per second end to end (decode + letterbox + encoder + head; "
              "no annotated video). Per-frame latency covers every frame (decode always, encoder only on encoded frames).", "",
              "| encoder | variant | mode | FPS | per-frame p50 / p90 (ms) | decode (ms) | letterbox (ms) | encoder p50 (ms) | head p50 (ms) |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["speed"]:
        lines.append(f"| {r['encoder']} | {r['variant']} | {r['mode']} | {fmt(r['fps'], 1)} | {fmt(r['per_frame_p50_ms'], 1)} / "
                     f"{fmt(r['per_frame_p90_ms'], 1)} | {fmt(r['decode_ms'], 1)} | {fmt(r['letterbox_ms'], 1)} | "
                     f"{fmt(r['encoder_p50_ms'], 2)} | {fmt(r['head_p50_ms'], 2)} |")
    lines += ["", "Targets (measured, not asserted): >= 30 decoded frames/s end to end at the paper's stride, >= 10 FPS "
              "with every frame encoded.", ""] + [f"- {note}" for note in result["notes"]] + [""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/accident_demo")
    parser.add_argument("--work", default="runs/bench-accident")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--speed-frames", type=int, default=200)
    parser.add_argument("--skip-vit", action="store_true", help="leave out the random ViT-B/32 tower (slow on 2 cores)")
    parser.add_argument("--vit-speed-variants", default="",
                        help="time only these variants of the random ViT-B/32 tower, e.g. onnx-fp32,openvino-int8 "
                             "(its every-frame runs take minutes each on 2 shared cores); default: all four")
    parser.add_argument("--distillclip-run", type=Path, help="an existing `edgeclip distill --recipe distillclip-digits` "
                        "run to use as the DistillCLIP student instead of distilling one (checked against today's recipe)")
    parser.add_argument("--kd-run", type=Path, help="an existing quickstart-recipe run to use as the KD student instead "
                        "of distilling one (checked against today's recipe)")
    parser.add_argument("--markdown-only", action="store_true", help="re-render <out>.md from an existing <out>.json")
    args = parser.parse_args()
    if args.markdown_only:  # the tables and text only; every number comes from the JSON a full run wrote
        result = json.loads(Path(args.out).with_suffix(".json").read_text())
        Path(args.out).with_suffix(".md").write_text(markdown(result))
        return 0
    if not (SHARED / "dad-demo").is_dir():
        print(f"real clips not found under {SHARED}; this benchmark needs ../shared/data beside the checkout", file=sys.stderr)
        return 2
    import os

    from edgeclip.paths import cache_dir

    started, work, load_start = time.perf_counter(), Path(args.work), os.getloadavg()[0]
    work.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    from edgeclip.video.pipeline import real_frames

    reused = {}  # students trained elsewhere and copied into --work (see adopt_run)
    if args.kd_run:
        reused["KD student"] = adopt_run(args.kd_run, work / "kd-student", "quickstart")
    if args.distillclip_run:
        reused["DistillCLIP student"] = adopt_run(args.distillclip_run, work / "distillclip", "distillclip-digits")
    vit_variants = [v for v in args.vit_speed_variants.split(",") if v]
    unknown = [v for v in vit_variants if tuple(v.split("-", 1)) not in VARIANTS]
    if unknown:
        print(f"error: --vit-speed-variants: unknown {unknown}; use some of "
              f"{', '.join(f'{b}-{p}' for b, p in VARIANTS)}", file=sys.stderr)
        return 2
    kd_dir = kd_student(work)
    kd_name = json.loads((kd_dir / "spec.json").read_text())["name"]
    pairs = [  # (pair, (label, spec, slug) of the teacher, (label, spec, slug) of the student)
        ("DistillCLIP (paper 001)", ("CLIP teacher proxy-digits-large", "proxy-digits-large", "proxy-digits-large"),
         ("DistillCLIP student distillclip_digits", str(distillclip_student(work)), "distillclip-student")),
        ("KD classifier (paper 000)", ("CLIP teacher proxy-digits", "proxy-digits", "proxy-digits"),
         (f"KD student {kd_name}", str(kd_dir), "kd-student")),
    ]
    probe = None
    accuracy: list[dict] = []
    artifacts: dict[str, tuple] = {}
    for pair, *members in pairs:
        for (label, spec, slug), role in zip(members, ("teacher", "student")):
            encoder = load_encoder(spec)
            probe = probe or build_dataset(CLIPS, encoder, WindowSampling(frames=8, stride=2), LabelProtocol(), progress=False)
            heads = ["evl", "mean-mlp"] + (["zero-shot"] if encoder.has_text else [])
            accuracy += accuracy_rows(label, role, encoder, work, heads, seeds, args.epochs, args.folds, pair)
            for variant, directory in export_variants(encoder, slug, work, real_frames(probe, encoder)).items():
                artifacts[f"{label} {variant}"] = (encoder, directory, variant)
                accuracy += accuracy_rows(f"{label} {variant}", role, load_encoder(str(directory)), work, ["evl"],
                                          seeds[:1], args.epochs, args.folds, pair, variant)
    towers = [("distillclip_mobilenetv3", "random DistillCLIP MobileNetV3 tower")]
    if not args.skip_vit:
        towers.append(("ViT-B-32:random", "random ViT-B/32 tower (OpenAI teacher architecture)"))
    for spec, label in towers:
        encoder = load_encoder(spec)
        accuracy += accuracy_rows(label, "random", encoder, work, ["evl"], seeds[:1], args.epochs, args.folds)
        frames = real_frames(probe, encoder, count=32)
        for variant, directory in export_variants(encoder, spec.split(":")[0], work, frames).items():
            artifacts[f"{label} {variant}"] = (encoder, directory, variant)
    add_retention(accuracy)

    video = demo_video(work, clips=max(1, -(-args.speed_frames // 100)))
    configs = []
    for key, (encoder, directory, variant) in artifacts.items():
        if vit_variants and key.startswith("random ViT-B/32") and variant not in vit_variants:
            continue  # not timed (stated in the result file)
        backend, precision = variant.split("-")
        configs.append((key.rsplit(" ", 1)[0], variant, speed_model(encoder, directory, backend, precision, work)))
    speed = speed_rows(configs, video, args.rounds, args.speed_frames)

    notes = [
        "Pairs: (1) DistillCLIP, paper 001's comparison: the proxy-digits-large CLIP image tower (teacher) vs the "
        "distillclip_digits image tower distilled from it (recipe distillclip-digits); (2) paper 000's KD: the "
        f"proxy-digits tower vs the {kd_name} classifier distilled from it (quickstart recipe), backbone features. "
        "All four see 32×32 letterboxed frames and were trained on 8×8 handwritten digits.",
        "Students are distilled by the recipes named above into --work on first use and reused from there after"
        + ("; this run reused students trained earlier (recipe checked equal to today's, copied into --work): "
           + "; ".join(f"{who} from {r['source']} (recipe {r['recipe']}, model.pt sha256 {r['model_sha256_16']}…, "
                       + ", ".join(f"{k} {v:.4f}" for k, v in r["metrics"].items() if "accuracy" in k or "zero_shot" in k) + ")"
                       for who, r in reused.items()) if reused else "") + ".",
        f"Frame features are cached per encoder weights/artifact and clip under {cache_dir() / 'video-features'}; "
        "CV folds are reused from --work only when settings, windows and features are unchanged (edgeclip.video.train).",
        "int8: static QDQ calibrated on letterboxed frames of these clips for CNNs, dynamic for transformers "
        "(edgeclip's per-backend int8 recipe).",
        "The speed-model heads are untrained EVL heads with the paper's window (8 frames, 14 apart); the head's cost "
        "does not depend on its weights.",
        f"Load average at the start {load_start:.1f}, at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} logical "
        "cores — other jobs shared this CPU, so absolute numbers are pessimistic; compare rows within this file.",
    ] + ([f"Speed of the random ViT-B/32 tower: only {', '.join(vit_variants)} timed (--vit-speed-variants), to fit "
          "the run into the time the shared CPU allowed; its other variants were exported and are not in the speed table."]
         if vit_variants and not args.skip_vit else [])
    result = {
        "meta": {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": "python " + " ".join(sys.argv),
                 "minutes": (time.perf_counter() - started) / 60, "seeds": seeds, "epochs": args.epochs,
                 "folds": args.folds, "rounds": args.rounds, "speed_frames": args.speed_frames, "video": video.name,
                 "load_average": round(os.getloadavg()[0], 1), "load_average_start": round(load_start, 1),
                 "reused_students": reused, "vit_speed_variants": vit_variants or [f"{b}-{p}" for b, p in VARIANTS],
                 "features_cache": str(cache_dir() / "video-features")},
        "environment": collect_environment(threads=0),
        "protocol": probe.protocol.describe(),
        "data": {"clips": len(probe.entries), "counts": probe.describe()["counts"]},
        "accuracy": accuracy, "speed": speed, "notes": notes,
    }
    out = Path(args.out)
    write_json(out.with_suffix(".json"), result)
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
