"""Video pipeline: reading clips (PyAV / frame folders), sampling, clip lists, the labelled-window protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeclip.data.preprocess import Preprocess
from edgeclip.errors import UserError
from edgeclip.video import accident_demo as device
from edgeclip.video.clips import ClipEntry, LabelProtocol, clip_windows, read_clip_list, read_clip_lists
from edgeclip.video.io import clip_info, read_frames
from edgeclip.video.sampling import WindowSampling, even_indices, stride_indices
from edgeclip.video.synthetic import frame_index_of, write_clip, write_frame_folder

# shared/ lies beside the checkout (as in test_data.py); real-data tests skip where it is absent.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DAD_CLIP = SHARED_DATA / "dad-demo" / "000478"
CCD_LABELS = SHARED_DATA / "dashcam-clips" / "labels.txt"


def test_paper_stride_and_even_sampling():
    assert stride_indices(100, 14) == [0, 14, 28, 42, 56, 70, 84, 98]  # the paper's "every 14th from frame 0"
    assert stride_indices(100, 14, count=5) == [0, 14, 28, 42, 56]
    assert even_indices(100, 8) == [0, 14, 28, 42, 57, 71, 85, 99]  # round(i * 99 / 7), last frame included
    assert even_indices(10, 1) == [9]
    with pytest.raises(UserError, match="fewer than 9"):
        stride_indices(100, 14, count=9)
    with pytest.raises(UserError, match="shorter than the 8 frames"):
        even_indices(5, 8)
    with pytest.raises(UserError, match="stride must be >= 1"):
        stride_indices(100, 0)


def test_window_sampling_stride_and_span():
    stride = WindowSampling(frames=4, stride=3)
    assert stride.offsets == [9, 6, 3, 0] and stride.length == 10
    assert stride.indices(20) == [11, 14, 17, 20]
    even = WindowSampling(frames=3, stride=0, span=11)
    assert even.offsets == [10, 5, 0] and even.indices(10) == [0, 5, 10]
    assert device.window_offsets(4, 3) == stride.offsets  # training windows = the demo's sliding window
    # The paper's clip sampling is the window that ends at the clip's last sampled frame (what --stride/--span run).
    assert WindowSampling(frames=8, stride=14).indices(98) == stride_indices(100, 14)
    assert WindowSampling(frames=8, stride=0, span=100).indices(99) == even_indices(100, 8)
    with pytest.raises(UserError, match="start before the clip"):
        stride.indices(8)
    with pytest.raises(UserError, match="frames must be >= 1"):
        WindowSampling(frames=0)
    with pytest.raises(UserError, match="span >= frames"):
        WindowSampling(frames=4, stride=0, span=2)


def test_demo_windows_encode_only_needed_frames():
    windows = device.Windows(device.window_offsets(3, 4), hop=4)  # span 9: windows end at 8, 12, 16, ...
    assert [t for t in range(20) if windows.evaluates(t)] == [8, 12, 16]
    assert [i for i in range(20) if windows.needed(i)] == [0, 4, 8, 12, 16]  # 1 frame in 4 encoded
    every = device.Windows(device.window_offsets(3, 4), hop=1)
    assert all(every.needed(i) for i in range(12))
    features = {0: "a", 2: "c"}
    assert device.hold_lookup(features, 1) == "a" and device.hold_lookup(features, 2) == "c"


def test_device_letterbox_is_the_preprocess_letterbox():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (37, 91, 3), dtype=np.uint8))
    preprocess = Preprocess(size=32, resize_mode="letterbox")
    expected = preprocess(image)
    assert np.array_equal(device.preprocess_frame(image, preprocess.to_dict()), expected)
    assert (expected[:, :6] == expected[:, :1, :1]).all()  # padded rows on top: nothing was cropped
    with pytest.raises(device.InputError, match="frame size must be positive"):
        device.letterbox(image, 0)


def test_video_file_frames_count_and_order(tmp_path):
    video = write_clip(tmp_path / "clip.mp4", frames=20, fps=10)
    info = clip_info(video)
    assert (info.num_frames, info.fps, info.skipped) == (20, 10.0, 0)
    frames = read_frames(video, [0, 7, 19])
    assert {i: frame_index_of(f) for i, f in frames.items()} == {0: 0, 7: 7, 19: 19}


def test_frame_folder_with_a_corrupt_frame_skips_and_holds(tmp_path):
    folder = write_frame_folder(tmp_path / "000001", frames=12)
    (folder / "006.png").write_bytes(b"not a png")  # frame index 5
    source = device.open_source(frames=str(folder))
    seen = [index for index, _time, _image in source.frames()]
    assert seen == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    assert len(source.skipped) == 1 and source.skipped[0]["frame"] == 6 and "006.png" in source.skipped[0]["reason"]
    frames = read_frames(folder, [4, 5, 6])
    assert [frame_index_of(frames[i]) for i in (4, 5, 6)] == [4, 4, 6]  # frame 5 holds frame 4


def test_video_with_a_dropped_packet_counts_the_gap(tmp_path):
    import av

    clean = write_clip(tmp_path / "clean.mp4", frames=20)
    broken = tmp_path / "broken.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(clean)) as src, av.open(str(broken), "w") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for number, packet in enumerate(src.demux(src.streams.video[0])):
            if packet.size == 0:
                continue
            if number == 7:  # garbage payload in place of frame 7
                bad = av.Packet(b"\x00\x00\x01\xb6" + rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                bad.pts, bad.dts, bad.time_base, bad.is_keyframe = packet.pts, packet.dts, packet.time_base, True
                packet = bad
            packet.stream = stream
            dst.mux(packet)
    source = device.open_source(video=str(broken))
    seen = [index for index, _time, _image in source.frames()]
    assert 7 not in seen and len(seen) == 19 and [s["frame"] for s in source.skipped] == [8]
    assert clip_info(broken).skipped == 1
    assert frame_index_of(read_frames(broken, [7])[7]) == 6  # held


def test_missing_and_corrupt_videos_are_named(tmp_path):
    with pytest.raises(UserError, match="missing.mp4 does not exist"):
        clip_info(tmp_path / "missing.mp4")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00" * 100 + b"definitely not a video")
    with pytest.raises(UserError, match="corrupt.mp4 cannot be opened"):
        clip_info(corrupt)


def test_clip_list_parsing_and_errors(tmp_path):
    write_frame_folder(tmp_path / "clips" / "a", frames=3)
    write_clip(tmp_path / "clips" / "b.mp4", frames=3)
    listing = tmp_path / "list.txt"
    listing.write_text("# comment\nclips/a accident\n\nclips/b.mp4 0   # normal\n")
    entries = read_clip_list(listing)
    assert [(e.path.name, e.label, e.accident_frame) for e in entries] == [("a", 1, None), ("b.mp4", 0, None)]
    bad = {"clips/a maybe\n": "list.txt:1: unknown label 'maybe'", "clips/b.mp4 0 12\n": "cannot have an accident frame",
           "clips/a 1 zero\n": "not a 1-based frame number", "clips/nope 1\n": "clips/nope does not exist",
           "clips/a\n": "expected `clip_dir_or_video label", "# only comments\n": "has no clips"}
    for text, message in bad.items():
        listing.write_text(text)
        with pytest.raises(UserError, match=message.replace("(", r"\(")):
            read_clip_list(listing)
    listing.write_text("clips/a 1\n")
    with pytest.raises(UserError, match="already listed"):
        read_clip_lists([listing, listing])
    (tmp_path / "clips" / "labels.txt").write_text("b.mp4 normal\n")
    assert read_clip_list(tmp_path / "clips")[0].label == 0  # a folder means its labels.txt
    with pytest.raises(UserError, match="without labels.txt"):
        read_clip_list(tmp_path / "clips" / "a")


def test_labelled_window_protocol_by_hand():
    sampling, protocol = WindowSampling(frames=8, stride=2), LabelProtocol(gap_s=1.0, hop=2, max_windows=100)
    dad = clip_windows(0, ClipEntry(Path("dad"), 1), 100, 20.0, sampling, protocol)
    negatives, positives = [w.end for w in dad if w.label == 0], [w.end for w in dad if w.label == 1]
    # Accident in the last 10 frames (from frame index 90); normal windows end >= 1 s (20 frames) before it.
    assert negatives == list(range(14, 70, 2)) and max(negatives) + 1 <= 70  # inside frames 1-70
    assert positives == [99]  # only the window ending at the last frame surely covers the accident
    ccd = clip_windows(1, ClipEntry(Path("ccd"), 1, 37), 50, 10.0, sampling, protocol)
    assert [w.end for w in ccd if w.label == 0] == [14, 16, 18, 20, 22, 24]  # end < onset 36 - 10 frames
    assert [w.end for w in ccd if w.label == 1] == [37, 39, 41, 43, 45, 47, 49]  # newest frame is an accident frame
    normal = clip_windows(2, ClipEntry(Path("n"), 0), 40, 25.0, sampling, LabelProtocol(hop=2, max_windows=3))
    assert [(w.end, w.label) for w in normal] == [(14, 0), (26, 0), (38, 0)]  # spread, capped at 3
    assert clip_windows(3, ClipEntry(Path("short"), 0), 10, 25.0, sampling, protocol) == []


@pytest.mark.skipif(not DAD_CLIP.is_dir(), reason=f"real DAD clip {DAD_CLIP} not present")
def test_real_dad_clip_and_windows():
    info = clip_info(DAD_CLIP)
    assert (info.num_frames, info.fps) == (100, 20.0)
    frames = read_frames(DAD_CLIP, [0, 99])
    assert frames[99].size == (640, 360)
    boxed = device.preprocess_frame(frames[99], Preprocess(size=224, resize_mode="letterbox").to_dict())
    assert boxed.shape == (3, 224, 224) and np.allclose(boxed[:, :40], boxed[:, :1, :1])  # pad bands, no crop


@pytest.mark.skipif(not CCD_LABELS.is_file(), reason=f"real dashcam clips {CCD_LABELS} not present")
def test_real_dashcam_clip_list():
    entries = read_clip_list(CCD_LABELS.parent)
    assert len(entries) == 8 and sum(e.label for e in entries) == 4
    crash = next(e for e in entries if e.path.name == "000082.mp4")
    assert crash.accident_frame == 37
    info = clip_info(crash.path)
    assert (info.num_frames, info.fps) == (50, 10.0)
    windows = clip_windows(0, crash, info.num_frames, info.fps, WindowSampling(), LabelProtocol())
    assert {w.label for w in windows} == {0, 1}
    assert all(w.end < 36 - 10 for w in windows if w.label == 0) and all(w.end >= 36 for w in windows if w.label == 1)


def test_annotated_frame_has_probability_bar_and_alert_banner():
    """What the annotated MP4 shows: a bar filled to P(accident) (green below the threshold, red at or
    above it) and a red ALERT banner under the bar only while the probability passes the threshold, at the
    top of the frame: the bottom is where a video player draws its controls."""
    frame = Image.new("RGB", (400, 120), (90, 90, 90))
    calm = np.asarray(device.annotate(frame, 0.2, 0.5, "frame 1"))
    alert = np.asarray(device.annotate(frame, 0.8, 0.5, "frame 2"))
    nothing = np.asarray(device.annotate(frame, None, 0.5, "frame 0"))  # before the first window
    assert tuple(calm[5, 20]) == (40, 180, 60) and tuple(calm[5, 300]) == (30, 30, 30)  # bar to 20% of the width
    assert tuple(alert[5, 20]) == (220, 30, 30) and tuple(alert[5, 300]) == (220, 30, 30)  # to 80%, red
    assert tuple(alert[5, 200]) == (255, 255, 255)  # the threshold mark
    assert tuple(alert[20, 398]) == (200, 0, 0) and tuple(calm[20, 398]) == (90, 90, 90)  # banner only on alert
    assert (alert[int(120 * 0.7):] == 90).all()  # nothing in the bottom 30%, where the player's controls are
    assert tuple(nothing[5, 20]) == (30, 30, 30) and tuple(nothing[20, 398]) == (90, 90, 90)
    assert np.asarray(frame).mean() == 90  # the decoded frame itself is left as it is
