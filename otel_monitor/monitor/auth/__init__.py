"""Access control of the monitor's API: token config, constant-time lookup and the app-wide authorization."""
