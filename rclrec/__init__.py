"""rclrec: Relative Contrastive Learning (CIKM 2024) for sequential recommendation."""

__version__ = "0.1.0"
