"""Routing: request -> ordered attempts, endpoint health, key and request policies.

``Router`` (:mod:`.router`) plans; ``HealthTracker`` (:mod:`.health`) measures; the
``provider`` preferences (:mod:`.preferences`) and key policies (:mod:`.policy`) constrain.
"""

from tollway.routing.health import HealthTracker, build_health
from tollway.routing.policy import KeyPolicy, PolicyError, parse_policy
from tollway.routing.router import NoEndpointMatches, Plan, Router

__all__ = ["HealthTracker", "KeyPolicy", "NoEndpointMatches", "Plan", "PolicyError", "Router",
           "build_health", "parse_policy"]
