"""Replay buffers: the Redis-backed ring shared by the service and the learner."""
