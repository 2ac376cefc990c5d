"""The API: Kaizen's whole HTTP surface (FastAPI).

It validates requests, appends events to the log, waits until the projector has applied
them, and answers from the read model. It never writes the read model itself.

Layout (fastapi/full-stack-fastapi-template): ``main.py`` builds the app, ``deps.py``
declares dependencies as ``Annotated`` aliases, ``routes/`` holds one router per
resource, ``adapters.py`` is the only code that appends to Kafka and waits for the
projector, ``queries/`` reads the read model, ``schemas/`` are the request and response
models, ``problems.py``/``errors.py`` render every error as RFC 7807 problem+json.
"""

SERVICE_NAME = "api"
API_PREFIX = "/api/v1"
