"""thresher: Prefect-orchestrated data curation with small language models as judges."""

__version__ = "0.1.0"
