"""The operator's pages are in their own modules (``profile_pages``, ``resolver_pages``, ...); the landing
page, ``operator.profiles`` (``/profiles``), is the media-profile list in ``profile_pages``."""
