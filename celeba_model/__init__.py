"""Train, checkpoint and evaluate face-attribute CNNs on CelebA."""

__version__ = "0.1.0"
