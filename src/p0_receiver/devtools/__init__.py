"""Local development tools: emulators, a P0 simulator, and the whole stack on one machine."""
