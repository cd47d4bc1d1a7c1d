"""Renderers: every output renders the same Report (or the packet table) and recomputes nothing."""
