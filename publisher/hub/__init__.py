"""The Hugging Face Hub side: repo files, the card and staged folder, publish, the Space
upload, and one translator of Hub failures.
"""
