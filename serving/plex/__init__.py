"""Plex adapters: library and history sync, webhooks, history polling, pushing recommendations."""
