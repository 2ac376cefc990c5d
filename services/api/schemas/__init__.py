"""Request and response models of the API, one module per resource.

Responses are built from read-model rows with ``from_row``; requests are closed to
unknown fields, so a typo is a 422 naming the field rather than a silently ignored key.
"""
