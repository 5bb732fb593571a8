"""MCLRec (Qin et al., SIGIR 2023; docs/BASELINES.md sec. 5): views + learnable model augmenters.

Two augmented views v1, v2 of every instance of the batch (CL4SRec operators with MCLRec's
ratios crop 0.5 / mask 0.5 / reorder 0.8), encoded at the last position: z1 = f(v1),
z2 = f(v2); two MLP augmenters give z3 = g1(z1), z4 = g2(z2).

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

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rclrec.config import check_choice, check_finite
from rclrec.data.augment import MCLREC_RATIOS, two_views
from rclrec.devices import to_device
from rclrec.losses.baselines import check_pair, nt_xent
from rclrec.methods.augmentation import MASK_TOKENS, AugmentationMethod, encode_last
from rclrec.methods.base import Batch

# Per-dataset lmd (weight of NTXent(z1, z2)), beta (weight of the meta terms in the encoder
# steps) and dropout, from the MCLRec scripts (sec. 5); a dataset not listed takes Beauty's.
MCLREC_SETTINGS: dict[str, dict[str, float]] = {
    "beauty": {"lmd": 0.0, "beta": 0.05, "dropout": 0.5},
    "sports": {"lmd": 0.04, "beta": 0.4, "dropout": 0.5},
    "yelp": {"lmd": 0.03, "beta": 0.1, "dropout": 0.5},
    "ml-1m": {"lmd": 0.0, "beta": 0.01, "dropout": 0.1},
}
DEFAULT_DATASET = "beauty"


@dataclass(frozen=True)
class MCLRecConfig:
    lmd: float | None = None  # (float) weight of NTXent(z1, z2); None = MCLREC_SETTINGS[dataset]
    beta: float | None = None  # (float) weight of L_meta in the encoder step; None = per dataset
    tau: float = 1.0  # (float) temperature; MCLRec.yaml tau 1.0 (the meta terms hard-code 1.0)
    use_rl: bool = True  # (bool) the margin regulariser; scripts use_rl=1
    rl_weight: float = 0.1  # (float) its weight; code: meta_rl returns 0.1 x three margin terms
    aug_lr: float = 1e-3  # (float) Adam learning rate of the augmenters; MCLRec scripts
    crop: float = MCLREC_RATIOS["crop"]  # (float) view ratios, MCLRec repo (crop_ratio 0.5)
    mask: float = MCLREC_RATIOS["mask"]  # (float) MCLRec repo: 0.5
    reorder: float = MCLREC_RATIOS["reorder"]  # (float) MCLRec repo: 0.8
    mask_token: str = "row"  # (str) row (a [mask] row) | pad (id 0, MCLRec's code)

    def __post_init__(self) -> None:
        check_finite(self, "mclrec")
        check_choice("mclrec.mask_token", self.mask_token, MASK_TOKENS)


class MLPAugmenter(nn.Module):
    """MCLRec's learnable model augmenter (MCLRec repo ``Extractor``; docs/BASELINES.md 5).

    A 3-layer MLP hidden_dim -> 32 -> 16 -> hidden_dim with GELU after the first two layers and an
    L2 normalisation of the output. MCLRec trains two of them (z3 = g1(z1), z4 = g2(z2)) with
    their own Adam optimiser; they keep PyTorch's default Linear initialisation, as in the repo.

    Args:
        hidden_dim: input and output size (the encoder's D; 64 in MCLRec).
        widths: the two hidden widths (32, 16).
    """

    def __init__(self, hidden_dim: int = 64, widths: tuple[int, int] = (32, 16)) -> None:
        super().__init__()
        self.dense1 = nn.Linear(hidden_dim, widths[0])
        self.dense2 = nn.Linear(widths[0], widths[1])
        self.dense3 = nn.Linear(widths[1], hidden_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, D), unit L2 norm per row."""
        h = F.gelu(self.dense1(z))
        h = F.gelu(self.dense2(h))
        return F.normalize(self.dense3(h), dim=-1)


def mclrec_margin_regularizer(za: torch.Tensor, zb: torch.Tensor,
                              tau: float = 1.0) -> torch.Tensor:
    """MCLRec's margin term for one pair of view sets (``meta_contrast_rl_1``; sec. 5).

    With the NT-Xent logits of (za, zb) (dot / tau): per anchor row i, p_i = positive logit, n_ij
    its 2N - 2 negative logits, m_i = max_j n_ij; then
        mean_i relu(p_i - min(p_i, m_i)) + mean_{i,j} relu(max(p_i, m_i) - n_ij).
    Reproduced as the code computes it (docs/BASELINES.md calls the formula odd; it is not "fixed").

    Args:
        za: (N, D).
        zb: (N, D).
        tau: temperature of the logits (MCLRec.yaml tau = 1.0).

    Returns:
        Scalar.
    """
    check_pair(za, zb)
    n = za.shape[0]
    z = torch.cat([za, zb], 0)
    logits = (z @ z.T) / tau
    idx = torch.arange(2 * n, device=z.device)
    pos_idx = (idx + n) % (2 * n)
    p = logits[idx, pos_idx][:, None]  # (2N, 1)
    # The negatives' columns of each row (all but i and its positive), found on the host: a
    # boolean mask on the device would make a GPU wait for its count.
    keep = np.ones((2 * n, 2 * n), dtype=bool)
    rows = np.arange(2 * n)
    keep[rows, rows] = False
    keep[rows, (rows + n) % (2 * n)] = False
    columns = np.nonzero(keep)[1].reshape(2 * n, 2 * n - 2)
    neg = logits.gather(1, to_device(columns, z.device))
    m = neg.max(1, keepdim=True).values
    lower, upper = torch.minimum(p, m), torch.maximum(p, m)
    return F.relu(p - lower).mean() + F.relu(upper - neg).mean()


def mclrec_meta_loss(views: tuple[torch.Tensor, ...], tau: float = 1.0, use_rl: bool = True,
                     rl_weight: float = 0.1) -> torch.Tensor:
    """MCLRec's meta contrast (``meta_contrast``; docs/BASELINES.md sec. 5).

        L_meta = NTXent(z1, z4) + NTXent(z2, z3) + NTXent(z3, z4)
                 [+ rl_weight * (R(z1, z4) + R(z2, z3) + R(z3, z4))   if use_rl]
    with NT-Xent dot / tau (tau = 1.0) and R = ``mclrec_margin_regularizer``.

    Args:
        views: (z1, z2, z3, z4), each (N, D): the encoder outputs of augmented views 1 and 2,
            then g1(z1) and g2(z2) (the learnable augmenters).
        tau: temperature (1.0).
        use_rl: add the margin regulariser (MCLRec's ``use_rl=1``).
        rl_weight: its weight (0.1).

    Returns:
        Scalar loss. The encoder steps weight it by beta, the augmenter step by 1.
    """
    z1, z2, z3, z4 = views
    pairs = ((z1, z4), (z2, z3), (z3, z4))
    loss = sum(nt_xent(a, b, tau=tau, similarity="dot") for a, b in pairs)
    if use_rl:
        loss = loss + rl_weight * sum(mclrec_margin_regularizer(a, b, tau=tau) for a, b in pairs)
    return loss


def mclrec_step_loss(step: int, rec_loss: torch.Tensor | None, views: tuple[torch.Tensor, ...],
                     settings: MCLRecConfig) -> torch.Tensor:
    """The loss of one of MCLRec's three alternating steps (``calculate_loss`` modes; sec. 5).

        steps 1 and 3 (encoder):   CE + lmd * NTXent(z1, z2) + beta * L_meta
        step 2 (augmenters):       lmd * NTXent(z1, z2) + 1.0 * L_meta   (no CE)

    Args:
        step: 1, 2 or 3.
        rec_loss: scalar recommendation loss (ignored, may be None, in step 2).
        views: (z1, z2, z3, z4) as in ``mclrec_meta_loss``.
        settings: lmd, beta (set: resolved for the dataset), tau, use_rl, rl_weight.

    Returns:
        Scalar loss.
    """
    if step not in (1, 2, 3):
        raise ValueError(f"step must be 1, 2 or 3, got {step}")
    s = settings
    cl0 = nt_xent(views[0], views[1], tau=s.tau, similarity="dot")
    meta = mclrec_meta_loss(views, tau=s.tau, use_rl=s.use_rl, rl_weight=s.rl_weight)
    if step == 2:
        return s.lmd * cl0 + meta
    if rec_loss is None:
        raise ValueError("rec_loss is required in steps 1 and 3")
    return rec_loss + s.lmd * cl0 + s.beta * meta


class MCLRec(AugmentationMethod):
    """Meta-optimised contrastive learning with two learnable MLP augmenters."""

    Config = MCLRecConfig
    section = "mclrec"
    data_parallel = False  # the augmenters' own Adam steps would differ between replicas

    @classmethod
    def resolve_settings(cls, settings: MCLRecConfig, cfg) -> MCLRecConfig:
        """lmd and beta left unset take the MCLRec scripts' values for the dataset."""
        preset = MCLREC_SETTINGS.get(str(cfg.data.dataset).lower(),
                                     MCLREC_SETTINGS[DEFAULT_DATASET])
        return dataclasses.replace(settings, **{name: preset[name] for name in ("lmd", "beta")
                                                if getattr(settings, name) is None})

    def __init__(self, cfg, split, instances, device, item_ids=None) -> None:
        super().__init__(cfg, split, instances, device, item_ids)
        dim = cfg.encoder.hidden_dim
        self.augmenters = nn.ModuleList([MLPAugmenter(dim), MLPAugmenter(dim)]).to(device)
        self.aug_optimizer = torch.optim.Adam(self.augmenters.parameters(),
                                              lr=self.settings.aug_lr)

    def parameters(self) -> list[nn.Parameter]:
        return list(self.augmenters.parameters())

    def step_loss(self, step: int, rec_loss: torch.Tensor | None, z1: torch.Tensor,
                  z2: torch.Tensor) -> torch.Tensor:
        g1, g2 = self.augmenters
        return mclrec_step_loss(step, rec_loss, (z1, z2, g1(z1), g2(z2)), self.settings)

    def augmenter_step(self, v1: np.ndarray, v2: np.ndarray, encoder: nn.Module) -> torch.Tensor:
        """MCLRec's step 2: update g1, g2 on lmd NTXent(z1, z2) + L_meta (encoder untouched)."""
        with torch.no_grad():
            z1, z2 = encode_last(encoder, v1, v2, device=self.device)
        loss = self.step_loss(2, None, z1, z2)
        self.aug_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.aug_optimizer.step()
        self.aug_optimizer.zero_grad(set_to_none=True)  # no stale grads for the trainer's Adam
        return loss.detach()

    def extra_loss(self, batch: Batch, hidden: torch.Tensor, encoder: nn.Module
                   ) -> tuple[torch.Tensor | None, dict[str, float | torch.Tensor]]:
        if len(batch.index) < 2:
            return None, {}
        s = self.settings
        # Drawn on the host, from the host's copy of the inputs (no wait for the device).
        v1, v2 = two_views(batch.host_inputs, ratios={"crop": s.crop, "mask": s.mask,
                                                      "reorder": s.reorder},
                           mask_token=self.mask_id(encoder), generator=self.generator)
        aug_loss = self.augmenter_step(v1, v2, encoder) if encoder.training else float("nan")
        z1, z2 = encode_last(encoder, v1, v2, device=self.device)
        self.augmenters.requires_grad_(False)  # frozen in the encoder step
        try:
            loss = self.step_loss(1, z1.new_zeros(()), z1, z2)
        finally:
            self.augmenters.requires_grad_(True)
        stats = {"mclrec": loss.detach(), "mclrec_aug": aug_loss}
        if s.lmd == 0:  # the NTXent(z1, z2) term is off; still log it
            with torch.no_grad():
                stats["mclrec_cl0"] = nt_xent(z1, z2, tau=s.tau)
        return loss, stats
