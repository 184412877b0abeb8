"""postroom's core: the plugin contract, the data, and the services the CLI and worker call.

The core never imports from ``postroom.plugins``; it finds plugins only through the plugin manager.
"""
