"""Marquee: a movie recommender that learns from what people watch."""

__version__ = "0.1.0"
