"""cniscope: record and explain packet captures across Kubernetes network models."""

__version__ = "0.1.0"
