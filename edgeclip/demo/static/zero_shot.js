// The zero-shot page: pick/drop an image or an example, type class names, see top-5 per model.
// Talks only to its own server (/api/*); no external scripts, fonts or images (the server's CSP forbids them).
"use strict";

const $ = (id) => document.getElementById(id);
let currentImage = null;   // data URL of the image being classified
let currentLabel = null;   // its true label when it is an example that has one
let busy = false;

function showMessage(text, kind) {
  const box = $("message");
  if (!text) { box.hidden = true; box.textContent = ""; return; }
  box.hidden = false;
  box.className = "message " + (kind || "error");
  box.textContent = text;
  // The box sits at the top of the page; bring it into view when the page was scrolled down.
  if (box.getBoundingClientRect().top < 0) box.scrollIntoView({block: "nearest"});
}

function clearResults() {
  // After an error nothing of an earlier image may stay on screen as if it answered this request.
  for (const prefix of ["student", "teacher"]) {
    $(prefix + "-top").replaceChildren();
    const latency = $(prefix + "-latency");
    latency.textContent = "";
    delete latency.dataset.imageMs;
  }
}

function percent(p) {
  return (100 * p).toFixed(1) + "%";
}

function ms(value) {
  if (value === null || value === undefined) return "–";
  return value < 10 ? value.toFixed(2) + " ms" : value.toFixed(1) + " ms";
}

function describe(model) {
  // `params` is the whole model's count (both towers share it), shown once.
  const parts = [model.name, model.backend + " " + model.precision,
    model.mode === "text" ? "image + text towers" : "fused zero-shot artifact",
    (model.params / 1e6).toFixed(2) + " M params (whole model)", model.size_mb.toFixed(2) + " MB on disk",
    "parity " + model.parity];
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
  const first = list.firstElementChild;
  if (first && currentLabel !== null) {  // an example with a true label: say whether the top-1 is right
    first.classList.add(first.dataset.class === currentLabel ? "right" : "wrong");
    first.title = first.dataset.class === currentLabel ? "correct: the true label" : "wrong: the true label is " + currentLabel;
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
      clearResults();
      showMessage(data.error || ("the server answered " + response.status), "error");
      document.body.dataset.state = "error";
      return;
    }
    renderTop("student", data.student);
    if (data.teacher) renderTop("teacher", data.teacher);
    const notes = [];
    if (data.outside_domain) notes.push(data.outside_domain.note);
    if (data.duplicates_ignored.length) notes.push("Ignored repeated names: " + data.duplicates_ignored.join(", ") + ".");
    if (data.fixed_classes) notes.push("This model's classes are built in (fused artifact); the typed names are not used.");
    showMessage(notes.join(" "), data.outside_domain ? "warn" : "note");
    document.body.dataset.state = "done";
  } catch (e) {
    clearResults();
    showMessage("Could not reach the demo server (" + e.message + "). Is it still running?", "error");
    document.body.dataset.state = "error";
  } finally {
    busy = false;
    $("classify").disabled = false;
    document.body.dataset.requests = String(Number(document.body.dataset.requests || 0) + 1);
  }
}

function useImage(dataUrl, caption, trueLabel) {
  currentImage = dataUrl;
  currentLabel = trueLabel === undefined ? null : trueLabel;
  const preview = $("preview");
  preview.hidden = false;
  preview.src = dataUrl;
  $("drop-text").textContent = caption || "Drop another image or pick a file";
  const truth = $("truth");
  truth.hidden = currentLabel === null;
  truth.textContent = currentLabel === null ? "" : "True label: " + currentLabel +
    " (a top-1 marked green is right, red is wrong)";
  truth.dataset.label = currentLabel === null ? "" : currentLabel;
  classify();
}

function readFile(file) {
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => useImage(reader.result, file.name, null);
  reader.onerror = () => showMessage("Could not read " + file.name + " in the browser.", "error");
  reader.readAsDataURL(file);
}

async function useExample(example) {
  const response = await fetch(example.url);
  const blob = await response.blob();
  const reader = new FileReader();
  reader.onload = () => useImage(reader.result, example.caption, example.label);
  reader.readAsDataURL(blob);
}

function exampleTitle(example) {
  const checked = Object.entries(example.top1).map(([role, top]) =>
    role + " says " + top + (example.correct[role] ? " (right)" : " (wrong)"));
  return example.caption + (example.label ? " · true label: " + example.label : " · no true label among these classes") +
    (checked.length ? " · measured at start-up: " + checked.join(", ") : "");
}

function setUpModel(info) {
  const s = info.student;
  $("model-line").textContent = "Model: " + info.model_dir + " — the exported student" +
    (info.teacher ? " and the exported teacher" : "") + " run with their runtime" + (info.torch_loaded ? "" : " (no PyTorch)") + ".";
  const knows = $("knows");
  knows.hidden = !info.knows || !info.knows.summary;
  knows.textContent = info.knows ? info.knows.summary : "";
  knows.className = "knows" + (info.knows && info.knows.proxy ? " proxy" : "");
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
  $("examples-note").textContent = info.examples_note || "";
  const shelf = $("examples");
  for (const example of info.examples) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "example" + (example.all_correct ? " all-correct" : "");
    button.title = exampleTitle(example);
    button.dataset.name = example.name;
    button.dataset.label = example.label || "";
    const img = document.createElement("img");
    img.src = example.url;
    img.alt = example.caption;
    if (example.label) img.className = "pixelated";
    const caption = document.createElement("span");
    caption.className = "example-label";
    caption.textContent = example.label || "no label";
    button.append(img, caption);
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
