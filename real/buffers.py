"""Buffers the executor passes between ops: partial attention outputs, FP32 accumulators, and the
query block that travels the ring in pass-Q decode.  The merge of partial outputs by their
log-sum-exps happens here, in FP32."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Part:
    """A partial attention output over some key block: out (B, H, q, D), lse (B, H, q) FP32, for the
    accumulator's query rows ``rows`` (None: all)."""

    out: torch.Tensor
    lse: torch.Tensor
    rows: slice | None = None


@dataclass
class Acc:
    """FP32 running output (B, H, S, D; stored B, S, H, D) and log-sum-exp (B, H, S)."""

    o: torch.Tensor
    lse: torch.Tensor

    @classmethod
    def empty(cls, b: int, h: int, s: int, d: int, device) -> Acc:
        return cls(
            torch.empty(b, s, h, d, device=device, dtype=torch.float32).transpose(1, 2),
            torch.empty(b, h, s, device=device, dtype=torch.float32),
        )

    def init(self, part: Part) -> None:
        if part.rows is None or (part.rows.start == 0 and part.rows.stop == self.o.shape[2]):
            self.o.copy_(part.out)
            self.lse.copy_(part.lse)
        else:
            self.o.zero_()
            self.lse.fill_(float("-inf"))
            self.merge(part)

    def merge(self, part: Part) -> None:
        rows = slice(None) if part.rows is None else part.rows
        merge_into(self.o[:, :, rows], self.lse[:, :, rows], part.out, part.lse)


def merge_into(acc_o: torch.Tensor, acc_lse: torch.Tensor, out: torch.Tensor, lse: torch.Tensor) -> None:
    """In place: acc <- (acc * e^acc_lse + out * e^lse) / e^new_lse, new_lse = logaddexp(acc_lse, lse)."""
    new = torch.logaddexp(acc_lse, lse)
    wa = torch.exp(acc_lse - new).unsqueeze(-1)
    wb = torch.exp(lse - new).unsqueeze(-1)
    acc_o.mul_(wa).addcmul_(out, wb)
    acc_lse.copy_(new)


class Packed:
    """One flat byte buffer holding q (n, 1, H, D) in the model dtype, the running output
    o (n, H, 1, D) FP32 and lse (n, H, 1) FP32: what pass-Q decode sends around the ring."""

    def __init__(self, buf: torch.Tensor, n: int, h: int, d: int, dtype: torch.dtype):
        self.buf = buf
        es = torch.tensor([], dtype=dtype).element_size()
        a = n * h * d * es
        b = a + n * h * d * 4
        self.q = buf[:a].view(dtype).view(n, 1, h, d)
        self.o = buf[a:b].view(torch.float32).view(n, h, 1, d)
        self.lse = buf[b : b + n * h * 4].view(torch.float32).view(n, h, 1)

    @staticmethod
    def nbytes(n: int, h: int, d: int, dtype: torch.dtype) -> int:
        es = torch.tensor([], dtype=dtype).element_size()
        return n * h * d * (es + 4) + n * h * 4

    @classmethod
    def new(cls, n: int, h: int, d: int, dtype: torch.dtype, device) -> Packed:
        return cls(torch.empty(cls.nbytes(n, h, d, dtype), dtype=torch.uint8, device=device), n, h, d, dtype)
