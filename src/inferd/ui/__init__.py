"""Static files of the built-in status page (``static/``), served by :mod:`inferd.api.ui`."""
