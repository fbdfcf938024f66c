"""liveness package."""
