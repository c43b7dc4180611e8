"""Experiment grids: settings x seeds as trials, run on Ray or in-process, tracked in MLflow."""
