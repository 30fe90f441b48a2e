"""edgeclip.compress: int8 (classic methods, auto mode with sensitivity-driven mixed precision, QAT),
structured pruning with KD recovery, SmoothQuant, and the build's compressed candidates.

Modules: quantize (classic int8 methods), int8 (Int8Options, auto mode), cpu (VNNI → weight type),
sensitivity (ranking + search), ort_int8 / ov_int8 (revertible quantized models), qat, smoothquant,
prune, int8_inputs (int8 options, calibration and validation images: one rule), ship_rule (does int8 ship:
the one rule). The KD-recovery workflow (checkpoint → compressed checkpoint) is distill/compression.py;
the build's pruned/QAT candidates build/compression.py.
"""
