"""The models-from-code file MLflow logs (`python_model=` this path; see deploy/log_model.py).

MLflow runs this file when it loads the model; the agent opens its resources on the first request.
"""

import mlflow

from app.serving.agent import MemoryResponsesAgent

mlflow.models.set_model(MemoryResponsesAgent())
