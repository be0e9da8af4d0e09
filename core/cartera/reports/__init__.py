"""Whole-portfolio reports (aging)."""
