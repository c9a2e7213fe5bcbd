"""Recipes: the typed schema and the strict YAML loader."""
