"""SESR networks in PyTorch: the expanded training form and the collapsed inference form.

Layout: tensors are NCHW float32, N×1×H×W luma in [0, 1] in, N×1×sH×sW luma out, clipped to [0, 1].
The network (Bhardwaj et al., "Collapsible Linear Blocks for Super-Efficient Super Resolution",
MLSys 2022) is

    x0 = LB5×5(y − 0.5)                       1 → f channels
    x  = PReLU(LB3×3(x) + x), m times         short residual folded into the 3×3 kernel
    x  = x + x0                               long residual
    r  = LB5×5(x) + y                         f → s² channels, input broadcast to every channel
    out = clip(depth_to_space(r), 0, 1)       ×4 is two successive depth-to-space(2)

A linear block LB is a k×k conv to p channels followed by a 1×1 conv back, with no
non-linearity between them, so it equals one k×k conv whose kernel is the product of the two.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from .descriptor import BODY_KERNEL, HEAD_KERNEL, TAIL_KERNEL, ModelDescriptor
from .weights import CollapsedWeights, ConvWeights

__all__ = ["LinearBlock", "SESR", "CollapsedSESR", "collapse", "depth_to_space"]


def depth_to_space(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Rearrange s² channels into an s× larger image; ×4 runs two block-2 steps as SESR does."""
    steps = {2: 1, 4: 2}[scale]
    for _ in range(steps):
        x = F.pixel_shuffle(x, 2)
    return x


class LinearBlock(nn.Module):
    """Expanded linear block: k×k conv C_in → p, 1×1 conv p → C_out, optional identity residual.

    The forward pass collapses the block first and runs the single small conv (collapsed
    training), so a step costs k²·C_in·C_out MACs per pixel instead of k²·C_in·p + p·C_out.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, expansion: int,
                 residual: bool) -> None:
        super().__init__()
        if residual and in_channels != out_channels:
            raise ValueError("an identity residual needs in_channels == out_channels")
        self.kernel = kernel
        self.residual = residual
        self.expand = nn.Conv2d(in_channels, expansion, kernel, padding=kernel // 2)
        self.project = nn.Conv2d(expansion, out_channels, 1)

        # Variance-preserving product: Var(Wc) = p·Var(W1)·Var(W2) = 1 / (k²·C_in).
        nn.init.normal_(self.expand.weight, std=1.0 / math.sqrt(kernel * kernel * in_channels))
        nn.init.normal_(self.project.weight, std=1.0 / math.sqrt(expansion))
        nn.init.zeros_(self.expand.bias)
        nn.init.zeros_(self.project.bias)

    def collapsed(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the single conv (weight C_out×C_in×k×k, bias C_out) equal to this block."""
        w1 = self.expand.weight                      # p × C_in × k × k
        w2 = self.project.weight[:, :, 0, 0]         # C_out × p
        weight = torch.einsum("op,pikl->oikl", w2, w1)
        bias = w2 @ self.expand.bias + self.project.bias

        if self.residual:
            # y = conv(x, Wc) + x equals conv(x, Wc + R), R = identity at the centre tap.
            centre = self.kernel // 2
            eye = torch.eye(weight.shape[0], dtype=weight.dtype, device=weight.device)
            weight = weight.clone()
            weight[:, :, centre, centre] += eye
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.collapsed()
        return F.conv2d(x, weight, bias, padding=self.kernel // 2)

    def forward_expanded(self, x: torch.Tensor) -> torch.Tensor:
        """Run the two convs as trained, without collapsing (reference for tests)."""
        y = self.project(self.expand(x))
        return y + x if self.residual else y


class SESR(nn.Module):
    """SESR in its expanded, trainable form."""

    def __init__(self, descriptor: ModelDescriptor) -> None:
        super().__init__()
        self.descriptor = dataclasses.replace(descriptor, collapsed=False)
        f, p = descriptor.channels, descriptor.expansion
        self.head = LinearBlock(1, f, HEAD_KERNEL, p, residual=False)
        self.body = nn.ModuleList(
            LinearBlock(f, f, BODY_KERNEL, p, residual=True) for _ in range(descriptor.blocks)
        )
        self.activations = nn.ModuleList(nn.PReLU(f, init=0.25) for _ in range(descriptor.blocks))
        self.tail = LinearBlock(f, descriptor.out_channels, TAIL_KERNEL, p, residual=False)

    def _run(self, y: torch.Tensor, expanded: bool) -> torch.Tensor:
        def block(module: LinearBlock, x: torch.Tensor) -> torch.Tensor:
            return module.forward_expanded(x) if expanded else module(x)

        x0 = block(self.head, y - 0.5)
        x = x0
        for linear, activation in zip(self.body, self.activations):
            x = activation(block(linear, x))
        x = x + x0
        residual = block(self.tail, x) + y
        return depth_to_space(residual, self.descriptor.scale)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Upscale N×1×H×W luma without clipping, so the training loss gets the raw output."""
        return self._run(y, expanded=False)

    def forward_expanded(self, y: torch.Tensor) -> torch.Tensor:
        """Same as ``forward`` but through the uncollapsed convs (reference for tests)."""
        return self._run(y, expanded=True)


def collapse(model: SESR, training: dict | None = None) -> CollapsedWeights:
    """Collapse every linear block of ``model`` into one k×k conv with bias.

    The collapsed bias is W2·b1 + b2. The 1×1 conv receives b1 at every pixel, border included,
    because zero padding applies to the input of the k×k conv and never to its bias.
    """
    def conv(block: LinearBlock) -> ConvWeights:
        weight, bias = block.collapsed()
        return ConvWeights(weight.detach().cpu().numpy().copy(), bias.detach().cpu().numpy().copy())

    with torch.no_grad():
        descriptor = dataclasses.replace(model.descriptor, collapsed=True)
        return CollapsedWeights(
            descriptor=descriptor,
            head=conv(model.head),
            body=tuple(conv(b) for b in model.body),
            alphas=tuple(a.weight.detach().cpu().numpy().copy() for a in model.activations),
            tail=conv(model.tail),
            training=dict(training or {}),
        )


class CollapsedSESR(nn.Module):
    """Inference form in PyTorch: one conv per block, output clipped to [0, 1]."""

    def __init__(self, weights: CollapsedWeights) -> None:
        super().__init__()
        self.descriptor = weights.descriptor

        def conv(w: ConvWeights) -> nn.Conv2d:
            out_ch, in_ch, k, _ = w.weight.shape
            layer = nn.Conv2d(in_ch, out_ch, k, padding=k // 2)
            layer.weight.data = torch.from_numpy(w.weight.copy())
            layer.bias.data = torch.from_numpy(w.bias.copy())
            return layer

        self.head = conv(weights.head)
        self.body = nn.ModuleList(conv(w) for w in weights.body)
        self.activations = nn.ModuleList()
        for alpha in weights.alphas:
            prelu = nn.PReLU(alpha.shape[0])
            prelu.weight.data = torch.from_numpy(alpha.copy())
            self.activations.append(prelu)
        self.tail = conv(weights.tail)
        self.requires_grad_(False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        x0 = self.head(y - 0.5)
        x = x0
        for layer, activation in zip(self.body, self.activations):
            x = activation(layer(x))
        residual = self.tail(x + x0) + y
        return depth_to_space(residual, self.descriptor.scale).clamp(0.0, 1.0)
