"""Shared test settings: hypothesis runs derandomised, so CI is reproducible."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "spikelfp", derandomize=True, deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("spikelfp")
