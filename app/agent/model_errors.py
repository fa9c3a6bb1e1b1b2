"""Errors of the model layer, in words an operator or a client can act on.

Provider clients raise their own exceptions (openai's, httpx's); the agent turns the ones it
recognises into `ModelCallError` with a safe message (never the provider's text, which can echo
the request), and start-up problems into `ModelConfigError` naming the setting to fix.
"""

from __future__ import annotations

import httpx
import openai


class ModelConfigError(ValueError):
    """The model or tools cannot be set up as configured; the message names the setting."""


class ModelCallError(Exception):
    """A call to the model failed. `timed_out` separates "no answer in time" from the rest."""

    def __init__(self, message: str, *, timed_out: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.timed_out = timed_out
        self.status = status


def as_model_call_error(exc: BaseException) -> ModelCallError | None:
    """The `ModelCallError` for a provider failure, or None for anything else."""
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | TimeoutError):
        return ModelCallError(
            "The model did not answer within MODEL_TIMEOUT_SECONDS (after MODEL_MAX_RETRIES retries);"
            " nothing was saved.",
            timed_out=True,
        )
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        return ModelCallError("The model endpoint could not be reached; nothing was saved.")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in (401, 403):
            reason = "refused the service's credentials"
        elif status == 404:
            reason = "does not know this model or endpoint"
        elif status == 429:
            reason = "is rate limiting requests; retry later"
        elif status == 400:
            reason = "rejected the request (is the thread too long for the model?)"
        else:
            reason = "failed"
        return ModelCallError(
            f"The model endpoint {reason} (HTTP {status}); nothing was saved.", status=status
        )
    if isinstance(exc, openai.OpenAIError):
        return ModelCallError("The model's answer could not be used; nothing was saved.")
    return None
