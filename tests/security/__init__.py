"""Attack case lists (``cases_*.py``: ``CASES``, dicts with name, category, what, expect) that the attack tests
parametrize over, and fuzz counts (``counts/<area>.json``) that the fuzz tests write; ``report.py`` turns both into
SECURITY.md (``tests/test_security_report.py``)."""
