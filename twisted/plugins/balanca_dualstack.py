"""Registers the `dualstack:` server endpoint string with Twisted."""

from balanca.endpoints import DualStackParser

dualstack = DualStackParser()
