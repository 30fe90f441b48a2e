"""edgeclip.demo: pages a person opens in a browser to try exported models.

- `server.py`: a small HTTP server on the standard library (routes, JSON, static files from
  package data, byte ranges for video, loopback-only by default, body limits). Chosen over
  Gradio because Gradio (6.31, the newest on the package registry) requires Pillow < 13 while
  edgeclip pins Pillow 13.0.0, and because a device should need nothing but the artifacts and
  the runtime (README, "Demos in the browser").
- `zero_shot.py`: exported student (image tower + text tower with its shipped tokenizer, or a
  fused zero-shot artifact) and, when exported, the teacher's towers; classify one image against
  class names typed on the page. `zero_shot_page.py`: its routes. `examples.py`: example images.
  `knowledge.py`: what the page says the models know (the run's domain from the manifests, typed
  names outside a proxy's classes) and the examples' order, by measured correctness.
- `accident_page.py`: the output of `edgeclip demo accident` (alerts.json + annotated.mp4) as a
  page: the video, the P(accident) timeline with threshold and alerts, per-frame latency.
- `teacher_towers.py`: exports a run's CLIP teacher to image/text towers once (needs torch; run
  in a child process so the serving process never imports torch).
- `static/`: the pages (HTML, JS, CSS; no external assets), `examples/`: shipped example images.

Nothing here imports torch except `teacher_towers.py`.
"""
