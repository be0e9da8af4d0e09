"""A plugin that cannot even be imported: the host must report it and carry on."""

raise ImportError("this plugin needs a module that is not installed")
