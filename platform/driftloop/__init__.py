"""driftloop: drift -> retrain -> evaluation gate -> canary -> promote or roll back."""

__version__ = "0.1.0"
