"""The method contract: the trainer computes the recommendation loss, a method adds its own."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rclrec.config import ExperimentConfig
from rclrec.data.batches import TrainingInstances
from rclrec.data.split import LeaveOneOutSplit
from rclrec.losses.recommendation import RecommendationLoss


@dataclass
class Batch:
    """One training step's instances.

    Attributes:
        index: (B,) rows of the TrainingInstances.
        inputs: (B, L) left-padded input items (tensor on the training device).
        targets: (B, L) or (B, 1) targets (tensor).
        users: (B,) user rows (numpy).
        whole: (B,) True where the instance ends with the user's final training target (numpy).
    """

    index: np.ndarray
    inputs: torch.Tensor
    targets: torch.Tensor
    users: np.ndarray
    whole: np.ndarray


class Method:
    """Plain next-item training (SASRec, FMLP-Rec): no extra objective."""

    def __init__(self, cfg: ExperimentConfig, split: LeaveOneOutSplit,
                 instances: TrainingInstances, device: torch.device) -> None:
        self.cfg = cfg
        self.split = split
        self.instances = instances
        self.device = device
        # train.loss, built once (item frequencies): the trainer and the method's own rec. terms
        # (RCL's positives) call this same object.
        self.rec_loss = RecommendationLoss.build(cfg.train, instances.targets, split.num_items,
                                                 device)

    # The trainer's recommendation loss is multiplied by this (CT4Rec averages it with the
    # loss of its second dropout pass, so it takes half here and adds the other half itself).
    rec_loss_weight: float = 1.0
    extra_tokens: int = 0  # input-only rows the encoder needs after the items ([mask])
    # False for a method that steps an optimizer of its own: its replicas would drift apart.
    data_parallel: bool = True

    # The config section the method reads ("rcl", "baseline"; "" for none). With ``reads`` it is
    # the one declaration behind both the CLI's method flags and the cell hash.
    section: str = ""

    @classmethod
    def reads(cls) -> tuple[str, ...]:
        """The fields of ``section`` the method reads: a flag naming another is an error, and
        the others do not enter its cell hash."""
        return ()

    @classmethod
    def code_constants(cls, cfg) -> dict[str, object]:
        """Values fixed in the method's code that change what a run of ``cfg`` computes (a
        preset's view ratios, a sampled-negative count): the cell hash covers them, so editing
        one re-keys the cells it changes, where no setting could tell."""
        return {}

    def setup(self, encoder: nn.Module) -> None:
        """Called once before training (e.g. to build a similarity index)."""

    def parameters(self) -> list[nn.Parameter]:
        """Extra trainable parameters the optimizer must update (e.g. learned augmenters)."""
        return []

    def random_state(self) -> dict:
        """States of the method's own generators (attributes), saved in every checkpoint."""
        state = {}
        for name, value in vars(self).items():
            if isinstance(value, np.random.Generator):
                state[name] = value.bit_generator.state
            elif isinstance(value, torch.Generator):
                state[name] = value.get_state()
        return state

    def set_random_state(self, state: dict) -> None:
        for name, value in state.items():
            generator = getattr(self, name)
            if isinstance(generator, np.random.Generator):
                generator.bit_generator.state = value
            else:
                generator.set_state(value)

    def optimizer_state(self) -> dict:
        """States of the method's own optimizers (attributes, e.g. MCLRec's augmenters' Adam),
        saved in every checkpoint: a resumed run must not restart their moments."""
        return {name: value.state_dict() for name, value in vars(self).items()
                if isinstance(value, torch.optim.Optimizer)}

    def set_optimizer_state(self, state: dict) -> None:
        for name, value in state.items():
            getattr(self, name).load_state_dict(value)

    def checkpoint_state(self) -> dict:
        """Non-parameter state a resumed run needs (e.g. what an index was built from)."""
        return {}

    def load_checkpoint_state(self, state: dict) -> None:
        """Restore ``checkpoint_state``; called by resume, before ``setup``."""

    def on_epoch_start(self, epoch: int, encoder: nn.Module) -> None:
        """Called before each epoch (e.g. to rebuild a similarity from the current encoder)."""

    def extra_loss(self, batch: Batch, hidden: torch.Tensor,
                   encoder: nn.Module) -> tuple[torch.Tensor | None, dict[str, float]]:
        """The method's weighted extra loss for a batch, and scalar statistics to log.

        Args:
            batch: the step's instances.
            hidden: (B, L, D) encoder states of ``batch.inputs`` (with dropout, as trained).
            encoder: the encoder, for extra forward passes (other views, positives).
        """
        return None, {}
