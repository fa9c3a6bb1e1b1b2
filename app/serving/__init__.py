"""Serving the agent over the Responses protocol: the shared mapping (`responses`), the MLflow
`ResponsesAgent` (`agent`, needs the `serving` extra) and its models-from-code file (`model`)."""
