"""Local simulators of the two remote APIs (GoHighLevel and Shift4Shop) and their shared helpers."""
