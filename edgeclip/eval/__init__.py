"""Evaluation suites for dual encoders (CLIP_benchmark style), teacher and student side by side.

`edgeclip eval --model DIR --suite zero-shot,linear-probe,shift,retrieval` → `suite.run_suite`.
Modules: `encoders` (one interface over a teacher and a student), `zero_shot`, `linear_probe`,
`shift`, `retrieval`, `size` (params / FLOPs / latency per tower), `suite` (the table).
"""
