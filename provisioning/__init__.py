"""Identity providers behind the ``Directory`` and ``GroupProvider`` ports."""
