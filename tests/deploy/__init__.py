"""Deploy checks: render the kustomize overlays and the Helm chart, validate, compare with the code."""
