"""PR publisher: turns a compiled prompt version into a GitHub PR or GitLab MR.

It folds the task topic into a local state (tasks' Git settings, prompt versions,
compiled jobs, pending publication requests) and, for partitions it owns and has
caught up on, opens each requested PR/MR once, then emits ``PrCreated`` or ``PrFailed``.
"""

SERVICE_NAME = "pr_publisher"
# The consumer group is "<topic prefix>.pr-publisher" (Topics.group), so deployments sharing
# a cluster under different prefixes never share a group.
GROUP = "pr-publisher"
