"""Pure renderers: handler view-models in, Adaptive Card / Block Kit / text out."""
