"""Scales: wire protocols, the scale and its link, the simulator, the stability filter."""
