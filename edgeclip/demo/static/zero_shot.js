// The zero-shot page: pick/drop an image or an example, type class names, see top-5 per model.
// Talks only to its own server (/api/*); no external scripts, fonts or images (the server's CSP forbids them).
"use strict";

const $ = (id) => document.getElementById(id);
let currentImage = null;   // data URL of the image being classified
let busy = false;

function showMessage(text, kind) {
  const box = $("message");
  if (!text) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.className = "message " + (kind || "error");
  box.textContent = text;
}

function percent(p) {
  return (100 * p).toFixed(1) + "%";
}

function ms(value) {
  if (value === null || value === undefined) return "–";
  return value < 10 ? value.toFixed(2) + " ms" : value.toFixed(1) + " ms";
}

function describe(model) {
  const parts = [model.name, model.backend + " " + model.precision,
    model.mode === "text" ? "image + text towers" : "fused zero-shot artifact",
    (model.params / 1e6).toFixed(2) + " M params", model.size_mb.toFixed(2) + " MB", "parity " + model.parity];
  return parts.join(" · ");
}

function renderTop(prefix, result) {
  const list = $(prefix + "-top");
  list.replaceChildren();
  for (const row of result.top) {
    const item = document.createElement("li");
    item.dataset.class = row.class;
    item.dataset.probability = String(row.probability);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = row.class;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = Math.max(0.5, 100 * row.probability).toFixed(1) + "%";
    bar.appendChild(fill);
    const value = document.createElement("span");
    value.className = "prob";
    value.textContent = percent(row.probability);
    item.append(name, bar, value);
    list.appendChild(item);
  }
  const t = result.latency_ms;
  let text = "image tower " + ms(t.image) + " per image (preprocess " + ms(t.preprocess) + ")";
  if (t.prompts) {
    text += t.text_cached ? " · class embeddings cached (" + t.prompts + " prompts)"
                          : " · class embeddings " + ms(t.text) + " for " + t.prompts + " prompts";
  }
  const latency = $(prefix + "-latency");
  latency.textContent = text;
  latency.dataset.imageMs = String(t.image);
}

async function classify() {
  if (busy) return;
  if (!currentImage) { showMessage("Pick an image first: drop one, choose a file, or click an example.", "error"); return; }
  busy = true;
  $("classify").disabled = true;
  document.body.dataset.state = "busy";
  try {
    const response = await fetch("/api/classify", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({image: currentImage, classes: $("classes").value}),
    });
    let data;
    try { data = await response.json(); } catch (e) { data = {error: "the server answered " + response.status + " without JSON"}; }
    if (!response.ok || data.error) {
      showMessage(data.error || ("the server answered " + response.status), "error");
      document.body.dataset.state = "error";
      return;
    }
    renderTop("student", data.student);
    if (data.teacher) renderTop("teacher", data.teacher);
    const notes = [];
    if (data.duplicates_ignored.length) notes.push("Ignored repeated names: " + data.duplicates_ignored.join(", ") + ".");
    if (data.fixed_classes) notes.push("This model's classes are built in (fused artifact); the typed names are not used.");
    showMessage(notes.join(" "), "note");
    document.body.dataset.state = "done";
  } catch (e) {
    showMessage("Could not reach the demo server (" + e.message + "). Is it still running?", "error");
    document.body.dataset.state = "error";
  } finally {
    busy = false;
    $("classify").disabled = false;
    document.body.dataset.requests = String(Number(document.body.dataset.requests || 0) + 1);
  }
}

function useImage(dataUrl, label) {
  currentImage = dataUrl;
  const preview = $("preview");
  preview.hidden = false;
  preview.src = dataUrl;
  $("drop-text").textContent = label || "Drop another image or pick a file";
  classify();
}

function readFile(file) {
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => useImage(reader.result, file.name);
  reader.onerror = () => showMessage("Could not read " + file.name + " in the browser.", "error");
  reader.readAsDataURL(file);
}

async function useExample(example) {
  const response = await fetch(example.url);
  const blob = await response.blob();
  const reader = new FileReader();
  reader.onload = () => useImage(reader.result, example.caption);
  reader.readAsDataURL(blob);
}

function setUpModel(info) {
  const s = info.student;
  $("model-line").textContent = "Model: " + info.model_dir + " — the exported student" +
    (info.teacher ? " and the exported teacher" : "") + " run with their runtime" + (info.torch_loaded ? "" : " (no PyTorch)") + ".";
  $("student-tag").textContent = s.backend + " " + s.precision;
  $("student-about").textContent = describe(s);
  if (info.teacher) {
    $("teacher-tag").textContent = info.teacher.backend + " " + info.teacher.precision;
    $("teacher-about").textContent = describe(info.teacher);
  } else {
    $("teacher-card").classList.add("absent");
    $("teacher-about").textContent = info.teacher_note || "No teacher for this model.";
  }
  const classes = $("classes");
  classes.value = info.default_classes.join(", ");
  if (s.mode === "fused") {
    classes.readOnly = true;
    $("classes-hint").textContent = "This model has its classes built in (a fused zero-shot artifact without a text tower).";
  } else {
    $("classes-hint").textContent = "Comma-separated, any words (at most " + info.max_classes + "). Prompts: " +
      s.templates.map((t) => "“" + t + "”").join(", ") + ".";
  }
  const shelf = $("examples");
  for (const example of info.examples) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "example";
    button.title = example.caption;
    button.dataset.name = example.name;
    const img = document.createElement("img");
    img.src = example.url;
    img.alt = example.caption;
    if (example.label) img.className = "pixelated";
    button.appendChild(img);
    button.addEventListener("click", () => useExample(example));
    shelf.appendChild(button);
  }
  document.body.dataset.state = "ready";
}

document.addEventListener("DOMContentLoaded", async () => {
  $("file").addEventListener("change", (e) => readFile(e.target.files[0]));
  $("classify").addEventListener("click", classify);
  $("classes").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) classify(); });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); readFile(e.dataTransfer.files[0]); });
  $("preview").addEventListener("error", () => { $("preview").hidden = true; });
  try {
    const response = await fetch("/api/info");
    setUpModel(await response.json());
  } catch (e) {
    showMessage("Could not load the model information (" + e.message + ").", "error");
  }
});
