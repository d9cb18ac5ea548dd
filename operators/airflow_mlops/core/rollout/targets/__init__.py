"""Where versions run during a rollout: a local process or a Kubernetes Deployment."""
