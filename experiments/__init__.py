"""The trainer, evaluation, probes and reports of the study's experiments."""

from physworld import require_extra

require_extra("experiments", "all")
