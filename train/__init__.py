"""Training: course models, data loaders, loops, checkpoints. Imports torch; never imported by runtime."""
