"""MCLRec (Qin et al., SIGIR 2023; docs/BASELINES.md sec. 5): views + learnable model augmenters.

Two augmented views v1, v2 of every instance of the batch (CL4SRec operators with MCLRec's
ratios crop 0.5 / mask 0.5 / reorder 0.8, mask id 0 as the code unless the encoder has a [mask]
row), encoded at the last position: z1 = f(v1), z2 = f(v2); two MLP augmenters give
z3 = g1(z1), z4 = g2(z2).

The authors alternate, per batch, encoder step / augmenter step / encoder step. Here one
trainer step holds one augmenter step followed by one encoder step, on the same views:
  1. augmenter step, inside ``extra_loss``: z1, z2 encoded under ``no_grad`` (the encoder gets no
     gradient from this step; the code discards it too), loss lmd NTXent(z1, z2) + L_meta,
     backward into g1, g2 only and their own Adam (lr 1e-3) steps;
  2. encoder step, by the trainer: fresh passes z1, z2 (new dropout) through the just-updated
     augmenters, which are frozen while the graph is built (``requires_grad_(False)``, so their
     ``grad`` stays None and the trainer's optimizer leaves them alone) and the method returns
     lmd NTXent(z1, z2) + beta L_meta (the trainer adds CE).
So the encoder steps once per batch (the authors: twice) and the augmenters once (as the authors).
The augmenter parameters are returned by ``parameters()`` so checkpoints keep them; their own
Adam state is checkpointed too (Method.optimizer_state), so a resumed run continues exactly.

Per-dataset lmd / beta from the MCLRec scripts (``MCLREC_SETTINGS``); a dataset not listed takes
Beauty's (lmd 0, beta 0.05). The scripts' dropout (0.5; 0.1 for ML-1M) is the encoder's setting.
"""

from __future__ import annotations

import torch
from torch import nn

from rclrec.data.augment import MCLREC_RATIOS, two_views
from rclrec.losses.baselines import (
    MCLREC_RL_WEIGHT,
    MCLREC_SETTINGS,
    MCLREC_TAU,
    MLPAugmenter,
    mclrec_step_loss,
    nt_xent,
)
from rclrec.methods.base import Batch
from rclrec.methods.cl4srec import BaselineMethod, encode_last


class MCLRec(BaselineMethod):
    """Meta-optimised contrastive learning with two learnable MLP augmenters."""

    hyper = ("lmd", "beta", "tau", "use_rl", "aug_lr", "mask_token")
    lmd: float | None = None  # weight of NTXent(z1, z2); None = MCLREC_SETTINGS[dataset]
    beta: float | None = None  # weight of L_meta in the encoder step; None = per dataset
    tau: float = MCLREC_TAU  # MCLRec.yaml tau 1.0
    use_rl: bool = True  # margin regulariser (use_rl=1 in the scripts)
    aug_lr: float = 1e-3  # Adam lr of the augmenters (scripts)
    default_dataset = "beauty"  # settings for a dataset MCLREC_SETTINGS does not list
    data_parallel = False  # the augmenters' own Adam steps would differ between replicas

    def __init__(self, cfg, split, instances, device) -> None:
        super().__init__(cfg, split, instances, device)
        dim = cfg.encoder.hidden_dim
        self.augmenters = nn.ModuleList([MLPAugmenter(dim), MLPAugmenter(dim)]).to(device)
        self.aug_optimizer = torch.optim.Adam(self.augmenters.parameters(), lr=self.aug_lr)

    @classmethod
    def resolved_hyper(cls, cfg) -> dict[str, object]:
        values = super().resolved_hyper(cfg)
        preset = MCLREC_SETTINGS.get(str(cfg.data.dataset).lower(),
                                     MCLREC_SETTINGS[cls.default_dataset])
        for name in ("lmd", "beta"):
            if values[name] is None:
                values[name] = preset[name]
        return values

    @classmethod
    def code_constants(cls, cfg) -> dict[str, object]:
        return {"ratios": MCLREC_RATIOS, "rl_weight": MCLREC_RL_WEIGHT}

    def parameters(self) -> list[nn.Parameter]:
        return list(self.augmenters.parameters())

    def augmenter_step(self, v1: torch.Tensor, v2: torch.Tensor, encoder: nn.Module) -> float:
        """MCLRec's step 2: update g1, g2 on lmd NTXent(z1, z2) + L_meta (encoder untouched)."""
        g1, g2 = self.augmenters
        with torch.no_grad():
            z1, z2 = encode_last(encoder, v1, v2)
        loss = mclrec_step_loss(2, None, z1, z2, g1(z1), g2(z2), self.lmd, self.beta,
                                tau=self.tau, use_rl=self.use_rl)
        self.aug_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.aug_optimizer.step()
        self.aug_optimizer.zero_grad(set_to_none=True)  # no stale grads for the trainer's Adam
        return float(loss.detach())

    def extra_loss(self, batch: Batch, hidden: torch.Tensor,
                   encoder: nn.Module) -> tuple[torch.Tensor | None, dict[str, float]]:
        if len(batch.index) < 2:
            return None, {}
        v1, v2 = two_views(batch.inputs, ratios=MCLREC_RATIOS, mask_token=self.mask_id(encoder),
                           generator=self.generator)
        aug_loss = self.augmenter_step(v1, v2, encoder) if encoder.training else float("nan")
        z1, z2 = encode_last(encoder, v1, v2)
        g1, g2 = self.augmenters
        self.augmenters.requires_grad_(False)  # frozen in the encoder step
        try:
            zero = z1.new_zeros(())
            loss = mclrec_step_loss(1, zero, z1, z2, g1(z1), g2(z2), self.lmd, self.beta,
                                    tau=self.tau, use_rl=self.use_rl)
        finally:
            self.augmenters.requires_grad_(True)
        stats = {"mclrec": float(loss.detach()), "mclrec_aug": aug_loss}
        if self.lmd == 0:  # the NTXent(z1, z2) term is off; still log it
            with torch.no_grad():
                stats["mclrec_cl0"] = float(nt_xent(z1, z2, tau=self.tau))
        return loss, stats
