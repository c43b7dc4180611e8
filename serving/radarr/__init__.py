"""Radarr adapter: add recommended movies for download."""
