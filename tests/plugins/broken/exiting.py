"""A plugin that calls ``sys.exit`` while being imported."""

import sys

sys.exit("this plugin gives up at import")
