"""dsvm: run an OpenStack third-party CI job (Zuul, devstack, Tempest) without devstack-gate."""

__version__ = "0.1.0"
