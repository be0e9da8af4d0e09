"""The host side of the plugin SDK: discovery, the provider registry, guarded calls."""
