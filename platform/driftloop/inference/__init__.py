"""What a trained model version needs at inference time, and nothing of training.

Serving and batch scoring run a driftloop model version from the files the version stores
(``model.json`` and ``weights.npz`` of its bundle, checked against the content hash recorded at
registration): :class:`~driftloop.inference.model.NumpyModel` does the preprocessing, the net's
forward pass, the calibration and integrated-gradients attributions with NumPy alone. No pickle
is loaded and neither torch nor Captum is imported, so a serving process is ~250 MB smaller and
a one-row request does not pay torch's per-call overhead. Training (:mod:`driftloop.training`)
builds on the same preprocessing and calibration.
"""
