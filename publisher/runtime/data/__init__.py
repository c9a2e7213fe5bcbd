"""Kokoro-82M's config.json and the evaluation corpus, shipped as package data."""
