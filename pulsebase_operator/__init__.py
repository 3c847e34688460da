"""PulseBase Operator: runs a whole PulseBase stack from one custom resource."""

__version__ = "0.1.0"
