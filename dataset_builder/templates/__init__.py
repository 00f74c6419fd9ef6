"""Snippet templates the program generator composes (see dataset_builder/generator.py)."""
