"""``publisher sensitivity``: rank the nodes a precision recipe converts by the damage each
does alone.
"""
