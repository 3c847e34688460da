"""Pure builders: a validated PulseBase -> the Kubernetes objects it becomes.

No I/O, no clock, no client: the same spec always gives the same objects, so every
builder is tested as input -> output and the reconciler can compare before it writes.
"""
