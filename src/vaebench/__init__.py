"""vaebench: a reproducible benchmark suite for the autoencoder family."""

__version__ = "0.1.0"
