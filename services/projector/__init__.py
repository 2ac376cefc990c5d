"""The projector: folds the log into the read model the API serves.

It consumes the task and key topics (and heartbeats), applies each event in the same
database transaction that records the next offset, and so never applies an event twice
and resumes exactly where it stopped. ``kaizen replay`` runs the same fold into a fresh
database.
"""

SERVICE_NAME = "projector"
# The consumer group is "<topic prefix>.projector" (Topics.group), so deployments sharing
# a cluster under different prefixes never share a group.
GROUP = "projector"
