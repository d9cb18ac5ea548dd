"""Progressive rollout of a model version: policy, live-metrics analysis, targets, step loop.

``policy`` and ``analysis`` are plain data and arithmetic; ``local`` drives the scoring server as
a process on this machine; ``kubernetes`` drives Deployments, Services and a Gateway API
``HTTPRoute``; ``runner`` is the step loop both share; ``records`` keeps the registry's view of
where each version is deployed and refuses to strip a live version of its alias.
"""
