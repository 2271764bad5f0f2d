"""Integrations with web frameworks. Each sub-package needs its own extra (``pip install vask[django]``)."""
