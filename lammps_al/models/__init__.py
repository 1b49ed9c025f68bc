"""SNAP-family models: the physics (per-atom energies and their descriptor gradients) and the ML-IAP adapter."""
