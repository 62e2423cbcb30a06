"""Rule evaluation: each rule over its source when due, the alert lifecycle, inhibition, and the changes of a pass."""
