"""Webhooks: delivers job events to HTTP subscribers as signed CloudEvents.

It folds the subscriptions from the keys topic, consumes the task topic as its own
consumer group, and posts every job event to each matching subscription, in order per
job and subscription, at least once. Each attempt is recorded as a
``WebhookDeliveryAttempted`` event, which the projector folds into the dead-letter view.
See ``docs/adr/0005-webhooks-service.md`` and ``docs/webhooks.md``.
"""

SERVICE_NAME = "webhooks"
# The consumer group is "<topic prefix>.webhooks" (Topics.group).
GROUP = "webhooks"
