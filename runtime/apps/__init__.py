"""Small example applications built on the runtime API (torch-free, like the rest of runtime)."""
