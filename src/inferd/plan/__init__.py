"""Capacity planning: a replica's measured curve, the replicas an SLO needs at a peak, and a
replay of a traffic trace through the HPA policy (``inferd plan``, docs/deploy.md)."""
