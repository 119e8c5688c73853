"""Softplus as a faster ONNX graph with PyTorch's exact semantics.

onnxruntime's CPU ``Softplus`` kernel costs ~13-25 ns per element (measured on two hosts;
see benchmarks/onnx_latency.py), several times ``Exp`` + ``Log``, and it is less precise
than torch (1e-4 relative). The ``"exact"`` lowering computes, with z = beta·x,

    softplus(x) = (relu(z) + log1p(exp(-|z|))) / beta,   and x itself where z > threshold,

where ``log1p(u)`` is ``log(w) + (u - (w - 1))`` with ``w = 1 + u``: both subtractions are
exact in float32 (Sterbenz), so the rounding of ``1 + u`` is corrected and tiny results
(softplus(-100) ≈ 3.7e-44) keep their value instead of becoming 0. Max error against
torch: 3.5e-7 relative on normal float32 outputs, 2 ulp on denormals (tested).

For beta == 1 and threshold >= 16 the identity branch is redundant in float32:
log1p(exp(-z)) < ulp(z)/2 for every z > 15, so relu(z) + log1p(...) rounds to z exactly
(tested on every float32 in (16, 88]); the exported graph then has no Greater/Where.
"""

from __future__ import annotations

from onnxscript import opset18 as op

__all__ = ["SOFTPLUS_LOWERINGS", "softplus_exact", "translation_table"]

#: "exact": the fast form above; "plain": onnxruntime's Softplus op (the exporter default).
SOFTPLUS_LOWERINGS = ("exact", "plain")

#: Above this threshold (and beta == 1) the identity branch equals the formula in float32.
_IDENTITY_IS_IMPLIED_FROM = 16.0


def _constant(value: float):
    return op.Constant(value_float=float(value))


def softplus_exact(self, beta: float = 1.0, threshold: float = 20.0):
    """ONNX Script translation of ``aten::softplus(self, beta, threshold)``."""
    z = self if beta == 1.0 else op.Mul(self, _constant(beta))
    u = op.Exp(op.Neg(op.Abs(z)))
    w = op.Add(u, _constant(1.0))
    log1p_u = op.Add(op.Log(w), op.Sub(u, op.Sub(w, _constant(1.0))))
    out = op.Add(op.Relu(z), log1p_u)
    if beta != 1.0:
        out = op.Div(out, _constant(beta))
    if beta != 1.0 or threshold < _IDENTITY_IS_IMPLIED_FROM:
        out = op.Where(op.Greater(z, _constant(threshold)), self, out)
    return out


def translation_table(softplus: str) -> dict | None:
    """The ``custom_translation_table`` for ``torch.onnx.export``."""
    import torch

    if softplus not in SOFTPLUS_LOWERINGS:
        raise ValueError(
            f"unknown softplus lowering {softplus!r}; valid: {', '.join(SOFTPLUS_LOWERINGS)}"
        )
    return {torch.ops.aten.softplus.default: softplus_exact} if softplus == "exact" else None
