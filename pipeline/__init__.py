"""The whole flow, train → export → calibrate → build → compare → report, and the demo that runs it per model."""
