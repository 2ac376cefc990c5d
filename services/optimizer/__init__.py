"""The optimizer: decides when a task needs a job, and runs DSPy MIPROv2 jobs.

It folds the task topic into a local state store (offsets kept with the state, like the
projector), makes the trigger decisions of ``domain`` for the partitions it owns, and
runs each job in a killable subprocess off the event loop, so a long job never stalls
the consumer group.
"""

SERVICE_NAME = "optimizer"
# The consumer group is "<topic prefix>.optimizer" (Topics.group), so deployments sharing
# a cluster under different prefixes never share a group.
GROUP = "optimizer"
