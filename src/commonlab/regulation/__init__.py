"""The regulation: the document the council adopts (pure), the versions adopted so far, and
which one is in force at any moment. Every other domain reads it through `service`."""
