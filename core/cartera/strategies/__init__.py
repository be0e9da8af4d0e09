"""Strategies: versions, steps, enrollment, the planner, actions and their dispatch."""
