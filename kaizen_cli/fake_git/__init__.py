"""Fake Git hosts that speak the REST APIs Kaizen's PR publisher calls.

``server`` (the HTTP server and a tiny git store) and ``github`` (the GitHub REST API) back
the test suite's fakes (``tests/fakes/``) and ``kaizen dev fake-github`` (``demo``), a
GitHub stand-in a newcomer can run to watch Kaizen open a pull request on their machine.
"""
