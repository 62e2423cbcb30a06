"""The status page: every component, provider, alert, incident and silence on one page (``/``) and as JSON."""
