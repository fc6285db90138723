"""An Adam variant whose step is uniform across each parameter tensor.

Plain Adam divides every element's update by that element's own gradient RMS, so an
element with a tiny, noisy gradient (a face the cameras never see, whose Jacobian only
feels the Poisson coupling) moves as far per step as the best-constrained one. For a
field of per-face Jacobians that turns gradient noise into surface noise. Dividing by
one RMS per tensor (the largest of its elements') keeps Adam's scale invariance and
momentum but leaves the direction of the gradient as it is, so weakly constrained
elements move proportionally less (as Nicolet et al. 2021, "Large Steps in Inverse
Rendering", argue for preconditioned mesh parameters).
"""

from __future__ import annotations

import torch


class UniformAdam(torch.optim.Optimizer):
    """Adam (Kingma and Ba 2015) with the second-moment estimate reduced to its maximum
    over each parameter tensor: ``p -= lr * m_hat / (sqrt(max(v_hat)) + eps)``.

    Args:
        params: parameters or parameter groups, as for ``torch.optim.Adam``.
        lr: step size; the element with the largest gradient RMS moves about ``lr``
            per step, the others in proportion to their gradient.
        betas, eps: as Adam's.

    State per parameter (saved in ``state_dict`` for checkpoints): ``step`` (int),
    ``exp_avg`` and ``exp_avg_sq`` (tensors like the parameter). No host syncs: the
    maximum stays a device tensor.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        if not lr > 0:
            raise ValueError(f"UniformAdam: lr must be > 0; got {lr}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denom = (v.max() / (1 - beta2 ** t)).sqrt().add_(group["eps"])
                p.addcdiv_(m, denom, value=-group["lr"] / (1 - beta1 ** t))
        return loss
