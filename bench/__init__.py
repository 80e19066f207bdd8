"""`make bench`: figures that say how fast Zentry is on this machine (never asserted in tests)."""
