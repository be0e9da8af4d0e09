"""Segmentation: ordered segment rules, set-based evaluation, membership history, explain."""
