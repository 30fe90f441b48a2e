// The accident page: the output of `edgeclip demo accident` (alerts.json + annotated.mp4) as a video,
// a P(accident) timeline with the threshold and the alerts, and per-frame latency. Plots are plain SVG
// drawn here (the server's CSP forbids scripts from elsewhere; no plotting library is needed).
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function fmtMs(v) { return v === null || v === undefined ? "–" : (v < 10 ? v.toFixed(2) : v.toFixed(1)) + " ms"; }
function fmtS(v) { return v.toFixed(2) + " s"; }

function showMessage(text) {
  const box = $("message");
  box.hidden = !text;
  box.textContent = text || "";
}

// A chart frame: x in seconds [0, duration], y in [y0, y1]; returns helpers to place points.
function chart(width, height, duration, y0, y1, yTicks, yFormat, xLabel) {
  const m = {left: 72, right: 16, top: 14, bottom: 34};
  const svg = svgEl("svg", {viewBox: `0 0 ${width} ${height}`, class: "timeline", role: "img"});
  const x = (t) => m.left + (width - m.left - m.right) * (duration > 0 ? t / duration : 0);
  const y = (v) => height - m.bottom - (height - m.top - m.bottom) * (v - y0) / ((y1 - y0) || 1);
  for (const v of yTicks) {
    svg.appendChild(svgEl("line", {x1: m.left, x2: width - m.right, y1: y(v), y2: y(v), class: "grid"}));
    svg.appendChild(svgEl("text", {x: m.left - 6, y: y(v) + 4, "text-anchor": "end"}, yFormat(v)));
  }
  const step = duration > 20 ? 5 : duration > 8 ? 2 : duration > 3 ? 1 : 0.5;
  for (let t = 0; t <= duration + 1e-9; t += step) {
    svg.appendChild(svgEl("line", {x1: x(t), x2: x(t), y1: height - m.bottom, y2: height - m.bottom + 4, class: "axis"}));
    svg.appendChild(svgEl("text", {x: x(t), y: height - m.bottom + 17, "text-anchor": "middle"}, t.toFixed(step < 1 ? 1 : 0)));
  }
  svg.appendChild(svgEl("line", {x1: m.left, x2: width - m.right, y1: height - m.bottom, y2: height - m.bottom, class: "axis"}));
  svg.appendChild(svgEl("text", {x: width - m.right, y: height - 4, "text-anchor": "end"}, xLabel));
  return {svg, x, y, m, width, height};
}

function drawTimeline(data, video) {
  const duration = data.duration_s || Math.max(...data.probabilities.map((r) => r.time_s), 1);
  const c = chart(1000, 260, duration, 0, 1, [0, 0.25, 0.5, 0.75, 1], (v) => v.toFixed(2), "time (s)");
  if (data.first_window) {  // before the first full window there is nothing to score: shade it and say so
    const end = c.x(data.first_window.time_s);
    c.svg.appendChild(svgEl("rect", {x: c.m.left, y: c.m.top, width: Math.max(0, end - c.m.left),
                                     height: c.height - c.m.bottom - c.m.top, class: "unscored", id: "unscored"}));
    c.svg.appendChild(svgEl("text", {x: c.m.left + 4, y: c.height - c.m.bottom - 6, class: "unscored-label"},
                            "no score before the first full window"));
  }
  const points = data.probabilities.map((r) => `${c.x(r.time_s).toFixed(1)},${c.y(r.probability).toFixed(1)}`);
  c.svg.appendChild(svgEl("polyline", {points: points.join(" "), class: "prob", id: "prob-line"}));
  for (const r of data.probabilities) {
    const dot = svgEl("circle", {cx: c.x(r.time_s), cy: c.y(r.probability), r: 2.5, fill: "currentColor", class: "window"});
    dot.appendChild(svgEl("title", {}, `${fmtS(r.time_s)} (frame ${r.frame}): P(accident) ${r.probability.toFixed(3)}`));
    c.svg.appendChild(dot);
  }
  c.svg.appendChild(svgEl("line", {x1: c.m.left, x2: c.width - c.m.right, y1: c.y(data.threshold), y2: c.y(data.threshold),
                                   class: "threshold", id: "threshold-line"}));
  c.svg.appendChild(svgEl("text", {x: c.width - c.m.right - 4, y: c.y(data.threshold) - 6, "text-anchor": "end",
                                   class: "alert-label"}, `alert threshold ${data.threshold}`));
  data.alerts.forEach((a, i) => {
    const group = svgEl("g", {class: "alert-mark", "data-time": a.time_s});
    group.appendChild(svgEl("line", {x1: c.x(a.time_s), x2: c.x(a.time_s), y1: c.m.top, y2: c.height - c.m.bottom, class: "alert"}));
    group.appendChild(svgEl("text", {x: c.x(a.time_s) + 5, y: c.m.top + 12 + 14 * (i % 3), class: "alert-label"},
                            `ALERT ${fmtS(a.time_s)}`));
    c.svg.appendChild(group);
  });
  if (data.onset) {  // the labelled crash onset, when the clip has one
    const group = svgEl("g", {class: "onset-mark", id: "onset-mark", "data-time": data.onset.time_s});
    group.appendChild(svgEl("line", {x1: c.x(data.onset.time_s), x2: c.x(data.onset.time_s), y1: c.m.top,
                                     y2: c.height - c.m.bottom, class: "onset"}));
    group.appendChild(svgEl("text", {x: c.x(data.onset.time_s) - 5, y: c.m.top + 12, "text-anchor": "end", class: "onset-label"},
                            `crash onset ${fmtS(data.onset.time_s)}`));
    c.svg.appendChild(group);
  }
  const cursor = svgEl("line", {x1: c.x(0), x2: c.x(0), y1: c.m.top, y2: c.height - c.m.bottom, class: "cursor"});
  c.svg.appendChild(cursor);
  c.svg.addEventListener("click", (e) => {  // seek the video to the clicked time
    const box = c.svg.getBoundingClientRect();
    const px = (e.clientX - box.left) * c.width / box.width;
    const t = Math.min(duration, Math.max(0, (px - c.m.left) / (c.width - c.m.left - c.m.right) * duration));
    if (video.src) video.currentTime = t;
  });
  video.addEventListener("timeupdate", () => { cursor.setAttribute("x1", c.x(video.currentTime)); cursor.setAttribute("x2", c.x(video.currentTime)); });
  $("timeline").replaceChildren(c.svg);
}

function drawFrameLatency(data) {
  const values = data.per_frame_ms;
  if (!values || !values.length) {
    $("frame-latency").textContent = "This output has no per-frame series (written before the page existed); the table above has its percentiles.";
    return;
  }
  const fps = data.fps_source || 1;
  const duration = values.length / fps;
  const top = Math.max(...values) * 1.1 || 1;
  const ticks = [0, top / 2, top].map((v) => Math.round(v * 10) / 10);
  const c = chart(1000, 170, duration, 0, top, ticks, (v) => v + " ms", "time (s)");
  const barWidth = Math.max(1, (c.x(1 / fps) - c.x(0)) * 0.8);
  values.forEach((v, i) => {
    const bar = svgEl("rect", {x: c.x(i / fps), y: c.y(v), width: barWidth, height: c.y(0) - c.y(v), fill: "#2f6fdf", class: "frame-bar"});
    bar.appendChild(svgEl("title", {}, `frame ${i + 1}: ${fmtMs(v)}`));
    c.svg.appendChild(bar);
  });
  const p50 = data.latency_ms.per_frame.p50;
  if (p50 !== null) {
    c.svg.appendChild(svgEl("line", {x1: c.m.left, x2: c.width - c.m.right, y1: c.y(p50), y2: c.y(p50), class: "threshold"}));
    c.svg.appendChild(svgEl("text", {x: c.width - c.m.right - 4, y: c.y(p50) - 5, "text-anchor": "end", class: "alert-label"}, `p50 ${fmtMs(p50)}`));
  }
  $("frame-latency").replaceChildren(c.svg);
}

function fillLatency(data) {
  const names = {per_frame: "per frame (all stages)", decode: "decode", preprocess: "letterbox + normalise",
                 encoder: "image encoder (per encoded frame)", head: "temporal head (per window)", output: "annotate + write video"};
  const body = $("latency-table").querySelector("tbody");
  for (const [key, stats] of Object.entries(data.latency_ms)) {
    const row = document.createElement("tr");
    row.dataset.stage = key;
    const cells = [names[key] || key, fmtMs(stats.p50), fmtMs(stats.p90), fmtMs(stats.p99), fmtMs(stats.mean), String(stats.count)];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i) td.className = "num";
      row.appendChild(td);
    });
    body.appendChild(row);
  }
  $("fps-tag").textContent = data.end_to_end_fps ? data.end_to_end_fps.toFixed(1) + " FPS end to end" : "";
  $("latency-note").textContent = `${data.frames} frames (${data.skipped_frames} unreadable, skipped), ${data.encoded_frames} encoded, ` +
    `${data.windows} windows, head every ${data.hop} frame(s)` + (data.measured_on ? `; measured on ${data.measured_on}` : "") + ".";
}

function fillAlerts(data, video) {
  $("threshold-tag").textContent = "threshold " + data.threshold;
  const list = $("alerts");
  for (const a of data.alerts) {
    const item = document.createElement("li");
    item.className = "alert-time";
    item.dataset.time = String(a.time_s);
    const link = document.createElement("a");
    link.href = "#";
    link.textContent = `${fmtS(a.time_s)} (frame ${a.frame}): P(accident) ${a.probability.toFixed(2)}`;
    link.addEventListener("click", (e) => { e.preventDefault(); if (video.src) { video.currentTime = a.time_s; video.play().catch(() => {}); } });
    item.appendChild(link);
    list.appendChild(item);
  }
  $("alerts-note").textContent = data.alerts.length
    ? "An alert fires when P(accident) rises to the threshold or above (once per crossing)."
    : `No alert: P(accident) stayed below ${data.threshold} in all ${data.windows} windows.`;
  fillClipFacts(data);
}

function fillClipFacts(data) {
  const onset = $("onset-note");
  if (data.onset) {
    const first = data.alerts.length ? data.alerts[0].time_s - data.onset.time_s : null;
    onset.hidden = false;
    onset.textContent = `Labelled crash onset: ${fmtS(data.onset.time_s)} (frame ${data.onset.frame}, from ${data.onset.from}); ` +
      (first === null ? "no alert fired." : first < 0 ? `the first alert came ${fmtS(-first)} before it.`
                                                      : `the first alert came ${fmtS(first)} after it.`);
  }
  $("window-note").textContent = data.first_window
    ? `Nothing can be scored before the first full window: the head needs ${data.first_window.frames || "its"} frames, ` +
      `so the first score is at ${fmtS(data.first_window.time_s)} (frame ${data.first_window.frame}).`
    : "";
  const trained = $("trained-note");
  trained.hidden = !data.trained_on_clip;
  trained.textContent = data.trained_on_clip
    ? `Caveat: the model was trained on this clip (it is one of the ${data.training_clips} clips in its training record), ` +
      "so these scores show what it memorised, not how it does on new footage."
    : "";
}

function setUpVideo(data, video) {
  const note = $("video-message");
  if (!data.video_url) {
    note.hidden = false;
    note.textContent = "This run wrote no annotated video (--no-video). The timeline and latency below are from alerts.json.";
    video.hidden = true;
    return;
  }
  video.addEventListener("error", () => {
    note.hidden = false;
    note.textContent = "This browser cannot play the annotated video (its codec); open annotated.mp4 in " + data.out_dir + " with a video player.";
    document.body.dataset.video = "error";
  });
  video.addEventListener("loadedmetadata", () => { document.body.dataset.video = "ready"; });
  video.src = data.video_url;
}

document.addEventListener("DOMContentLoaded", async () => {
  const video = $("video");
  try {
    const response = await fetch("/api/summary");
    const data = await response.json();
    if (!response.ok || data.error) throw new Error(data.error || "the server answered " + response.status);
    $("run-line").textContent = `${data.source} · model ${data.model} (${data.backend}, ${data.encoder_artifact}) · ` +
      `${data.frames} frames at ${data.fps_source} fps · output ${data.out_dir}` + (data.torch_loaded ? "" : " · no PyTorch");
    setUpVideo(data, video);
    fillAlerts(data, video);
    drawTimeline(data, video);
    fillLatency(data);
    drawFrameLatency(data);
    document.body.dataset.state = "ready";
  } catch (e) {
    showMessage("Could not load the demo's output (" + e.message + ").");
    document.body.dataset.state = "error";
  }
});
