"""The Gymnasium simulator of movie-watching users. Importing it registers the environments."""

from env.registration import ENV_ID, MAX_EPISODE_STEPS, register_envs

__all__ = ["ENV_ID", "MAX_EPISODE_STEPS", "register_envs"]
