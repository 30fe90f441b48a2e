"""edgeclip.compress: post-training quantization of exported students (`quantize`).

`quantize.py` holds the int8 recipes the exporters use (DESIGN §5, measured here):
static QDQ with calibration on real images for CNNs (dynamic int8 makes CNNs 4–10× slower in
onnxruntime), dynamic int8 on MatMul/Gemm for transformers, static int8 of a text encoder only on
MatMul/Gemm, NNCF post-training quantization for OpenVINO.
"""
