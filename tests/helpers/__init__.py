"""Helpers shared by test modules (builders, worlds, invariants): test modules never import each other."""
