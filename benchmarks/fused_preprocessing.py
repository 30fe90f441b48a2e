"""Fused preprocessing: a decoded dashcam frame → logits, with the preprocessing on the host vs in the graph.

Part 1 (speed): real 720p frames decoded from the CCD crash clips in ../shared/data/dashcam-clips (PyAV,
RGB), and the same frames scaled to 854×480 with PIL (bicubic; standing in for a 480p stream). Students
with random weights (speed only): resnet18_w8 at 32² and mobilenetv3_small at 224², letterbox (the
dashcam geometry, DESIGN §4.6), batch 1, 1 thread, onnxruntime and OpenVINO fp32. Per frame:
  - classic: host preprocessing (`Preprocess`: PIL bicubic letterbox + /255 + mean/std + transpose in
    numpy) then the unfused artifact — timed as the whole, and as its two parts;
  - fused: the `--fused-preprocess HxW` artifact on the uint8 frame — timed as the whole, and its
    preprocessing alone (the same wrapper around an identity model, exported the same way).
All runners of one frame size are timed in ONE interleaved run (CPU-time medians of two rounds,
edgeclip/bench/cpu_timing.py): CPU time, because other jobs load this machine.

Part 2 (what bilinear-in-graph costs): the trained CIFAR-10 student
/work/main/runs/bench-kd-cifar10/proxy-resnet18_w8-k0 (read only) on CIFAR-10 test photos (seeded sample).
A 32×32 frame would make the resize an identity, so each photo is first upsampled with PIL bicubic to a
square frame (96², 100², 224²: integer and non-integer factors); then top-1 agreement between the
fused ONNX artifact on that frame and the classic path (PIL bicubic center crop of the same frame + the
unfused student in onnxruntime), and both paths' accuracy.

Usage (the committed results came from exactly this; see "command" in the JSON):
    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE nice -n 10 python benchmarks/fused_preprocessing.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image

from edgeclip.bench.cpu_timing import interleaved_cpu_medians
from edgeclip.bench.environment import collect_environment
from edgeclip.data import open_image_dataset
from edgeclip.data.sampling import sample_indices
from edgeclip.exporters import export_model
from edgeclip.io_utils import write_result_files
from edgeclip.runtimes import load_runtime
from edgeclip.students import create_student
from edgeclip.students.checkpoint import load_checkpoint

CLIPS = Path("../shared/data/dashcam-clips/ccd")
TRAINED = Path("/work/main/runs/bench-kd-cifar10/proxy-resnet18_w8-k0/student")
MODELS = (("resnet18_w8", 32), ("mobilenetv3_small", 224))
BACKENDS = ("onnx", "openvino")
FRAME_SIZES = {"720p": (720, 1280), "480p": (480, 854)}
CIFAR_FRAMES = (96, 100, 224)


def dashcam_frames(count: int) -> np.ndarray:
    """`count` decoded 1280×720 RGB frames, spread over the CCD clips (every 10th frame)."""
    frames = []
    for clip in sorted(CLIPS.glob("*.mp4")):
        with av.open(str(clip)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index % 10 == 5:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) >= count:
                    return np.stack(frames)
    return np.stack(frames)


class HostPreprocessing(torch.nn.Module):
    """Identity model: a fused artifact of it is the in-graph preprocessing alone (its time, split out)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def speed_part(frames_720: np.ndarray, work: Path, threads: int, iterations: int) -> list[dict[str, Any]]:
    rows = []
    for label, (height, width) in FRAME_SIZES.items():
        frames = frames_720 if (height, width) == (720, 1280) else np.stack(
            [np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BICUBIC)) for f in frames_720])
        frame = frames[0]
        runners: dict[str, Any] = {}
        inputs: dict[str, Any] = {}
        records: dict[str, dict[str, Any]] = {}
        for name, size in MODELS:
            torch.manual_seed(0)
            model, spec = create_student(name, class_names=[str(i) for i in range(10)], image_size=size)
            spec.preprocess = replace(spec.preprocess, resize_mode="letterbox")
            preprocess = spec.preprocess
            tensor = preprocess(Image.fromarray(frame))[None]
            host_key = f"{name}|host preprocessing (PIL bicubic + numpy)"
            runners[host_key], inputs[host_key] = (lambda f, p=preprocess: p(Image.fromarray(f))), frame
            ident_spec = replace(spec, name=f"{name}-preprocessing", kind="image_encoder", class_names=[], embed_dim=3 * size * size,
                                 output_names=["embedding"], dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}})
            for backend in BACKENDS:
                classic = export_model(model, spec, backend, "fp32", work / label / name / f"{backend}-classic")
                fused = export_model(model, spec, backend, "fp32", work / label / name / f"{backend}-fused",
                                     parity_inputs=frames[:4], fused_preprocess=(height, width))
                graph_only = export_model(HostPreprocessing(), ident_spec, backend, "fp32",
                                          work / label / name / f"{backend}-prep", fused_preprocess=(height, width))
                run_classic = load_runtime(classic.path, threads=threads).run
                run_fused = load_runtime(fused.path, threads=threads).run
                run_graph = load_runtime(graph_only.path, threads=threads).run
                records[f"{name}|{backend}"] = {"parity": fused.manifest["parity"],
                                                "classic_agreement": fused.manifest["fused_preprocessing"]["classic_agreement"],
                                                "geometry": fused.manifest["fused_preprocessing"]["geometry"]}
                for key, run, batch in (
                    (f"{name}|{backend}|classic model only", run_classic, tensor),
                    (f"{name}|{backend}|classic total", lambda f, r=run_classic, p=preprocess: r(p(Image.fromarray(f))[None]), frame),
                    (f"{name}|{backend}|fused total", run_fused, frame[None]),
                    (f"{name}|{backend}|fused preprocessing only", run_graph, frame[None]),
                ):
                    runners[key], inputs[key] = run, batch
            print(f"{label} {name}: exported", flush=True)
        timed = interleaved_cpu_medians(runners, inputs, rounds=2, iterations=iterations,
                                        progress=lambda m, lab=label: print(f"{lab}: {m}", flush=True))
        for name, _size in MODELS:
            host = timed[f"{name}|host preprocessing (PIL bicubic + numpy)"]
            for backend in BACKENDS:
                get = lambda what, n=name, b=backend: timed[f"{n}|{b}|{what}"]  # noqa: E731
                row = {"frame": label, "frame_hw": [height, width], "model": name, "backend": backend,
                       "host_preprocessing": host, "classic_model": get("classic model only"),
                       "classic_total": get("classic total"), "fused_total": get("fused total"),
                       "fused_preprocessing": get("fused preprocessing only"), **records[f"{name}|{backend}"]}
                if all("cpu_ms" in row[k] for k in ("classic_total", "fused_total")):
                    row["speedup_total"] = round(row["classic_total"]["cpu_ms"] / row["fused_total"]["cpu_ms"], 3)
                rows.append(row)
    return rows


def agreement_part(count: int, seed: int, threads: int, work: Path) -> dict[str, Any]:
    if not TRAINED.is_dir():
        return {"error": f"{TRAINED} not found: no trained student to measure agreement on"}
    model, spec, _ = load_checkpoint(TRAINED)
    dataset = open_image_dataset("cifar10", "test")
    indices = sample_indices(len(dataset), count, seed)
    photos = [dataset.load(int(i)) for i in indices]
    labels = np.asarray(dataset.labels)[indices]
    classic_runtime = load_runtime(export_model(model, spec, "onnx", "fp32", work / "cifar-classic").path, threads=threads)
    classic_pre = spec.preprocess
    results = []
    for side in CIFAR_FRAMES:
        frames = np.stack([np.asarray(p.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)) for p in photos])
        fused = export_model(model, spec, "onnx", "fp32", work / f"cifar-fused-{side}", parity_inputs=frames[:16],
                             fused_preprocess=(side, side))
        runtime = load_runtime(fused.path, threads=threads)
        fused_logits = np.concatenate([runtime.run(frames[i:i + 64]) for i in range(0, len(frames), 64)])
        classic_batch = np.stack([classic_pre(Image.fromarray(f)) for f in frames])
        classic_logits = np.concatenate([classic_runtime.run(classic_batch[i:i + 64]) for i in range(0, len(frames), 64)])
        fused_pred, classic_pred = fused_logits.argmax(1), classic_logits.argmax(1)
        results.append({"frame": side, "upsample": f"PIL bicubic 32→{side}", "images": int(len(frames)),
                        "geometry": fused.manifest["fused_preprocessing"]["geometry"], "parity": fused.manifest["parity"],
                        "top1_agreement": float((fused_pred == classic_pred).mean()),
                        "fused_accuracy": float((fused_pred == labels).mean()),
                        "classic_accuracy": float((classic_pred == labels).mean())})
        print(f"cifar {side}²: agreement {results[-1]['top1_agreement']:.4f}", flush=True)
    return {"student": str(TRAINED), "student_name": spec.name, "resize_mode": spec.preprocess.resize_mode,
            "data": "cifar10 test split", "seed": seed, "results": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/fused_preprocessing")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--frames", type=int, default=8, help="decoded 720p frames (parity inputs; the first is timed)")
    parser.add_argument("--cifar-images", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="fused-preprocessing-"))
    frames = dashcam_frames(args.frames)
    rows = speed_part(frames, work, args.threads, args.iterations)
    agreement = agreement_part(args.cifar_images, args.seed, args.threads, work)
    result = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "environment": collect_environment(args.threads),
              "frames": f"{len(frames)} decoded 1280x720 frames from {CLIPS} (every 10th frame from the 6th); 480p = the same "
                        "frames scaled to 854x480 with PIL bicubic", "rows": rows, "agreement": agreement,
              "seconds": round(time.time() - started, 1)}
    write_result_files(args.out, result, to_markdown(result))
    print(to_markdown(result))
    return 0


def _ms(cell: dict[str, Any]) -> str:
    return f"{cell['cpu_ms']:.2f}" if "cpu_ms" in cell else f"failed: {cell.get('error', '')[:60]}"


def to_markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = ["# Fused preprocessing: decoded frame → logits, host vs in-graph preprocessing", "",
             f"Command: `{result['command']}`", "",
             f"Machine: {env.get('cpu')}, {env.get('cores_usable')} usable cores, load average at start "
             f"{env.get('load_average_1m')} (shared with other jobs: CPU-time medians of two interleaved rounds per frame "
             f"size). {env.get('threads')} thread, batch 1, fp32, random weights, letterbox. Frames: {result['frames']}.", "",
             "## Per frame, CPU ms (classic = host PIL/numpy preprocessing + unfused artifact; fused = one artifact on the uint8 frame)",
             "", "| frame | model | backend | host preprocessing | classic model | classic total | fused preprocessing (graph only) "
             "| fused total | classic ÷ fused | round spread (classic, fused) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        spread = ", ".join(f"{row[k].get('round_spread', 0):.1%}" if "cpu_ms" in row[k] else "-"
                           for k in ("classic_total", "fused_total"))
        lines.append(f"| {row['frame']} | {row['model']} | {row['backend']} | {_ms(row['host_preprocessing'])} | "
                     f"{_ms(row['classic_model'])} | {_ms(row['classic_total'])} | {_ms(row['fused_preprocessing'])} | "
                     f"{_ms(row['fused_total'])} | {row.get('speedup_total', '-')} | {spread} |")
    lines += ["", "Parity of every fused artifact (against the PyTorch wrapper, on 4 real frames) and its top-1 agreement "
              "with the classic path on those frames (random weights: agreement here says little) are in the JSON rows.", ""]
    agreement = result["agreement"]
    lines += ["## What bilinear-in-graph costs: trained student on real CIFAR-10 test photos", ""]
    if "error" in agreement:
        lines.append(f"Not measured: {agreement['error']}")
    else:
        lines += [f"Student: `{agreement['student']}` ({agreement['student_name']}, {agreement['resize_mode']}), "
                  f"{agreement['results'][0]['images']} photos of the {agreement['data']} (seed {agreement['seed']}), each "
                  "upsampled to the frame size with PIL bicubic; classic = PIL bicubic preprocessing of that frame + the "
                  "unfused student (onnxruntime), fused = the fused artifact (box pre-filter + bilinear in the graph).", "",
                  "| frame | in-graph geometry (pool, bilinear target) | top-1 agreement fused vs classic | fused accuracy | classic accuracy |",
                  "|---|---|---|---|---|"]
        for item in agreement["results"]:
            g = item["geometry"]
            lines.append(f"| {item['frame']}² | pool {g['pool'][0]}×{g['pool'][1]}, bilinear to {g['resized'][0]}×{g['resized'][1]} | "
                         f"{item['top1_agreement']:.4f} | {item['fused_accuracy']:.4f} | {item['classic_accuracy']:.4f} |")
    lines += ["", f"Total run time {result['seconds']} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
