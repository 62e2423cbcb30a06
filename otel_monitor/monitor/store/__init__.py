"""The monitor's SQL stores: their tables (``schema``), engines, migrations and blocking-call threads."""
