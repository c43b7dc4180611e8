"""The closed online-learning loop (issue 20): simulated people, ``marquee serve``, Redis,
``marquee learn`` and guarded promotion, run together at compressed time."""
