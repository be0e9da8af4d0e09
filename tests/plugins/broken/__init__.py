"""Broken plugins, one fault each: the host must report every one and load the rest."""
