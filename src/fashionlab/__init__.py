"""fashionlab: Hydra-composed image classifiers on Fashion-MNIST, logged to TensorBoard.

Importing the package is cheap on purpose (no torch): `python src/train.py --help` must answer fast.
"""
