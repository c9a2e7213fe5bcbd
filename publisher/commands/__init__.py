"""Click commands that live in their own modules; publisher.cli registers them."""
