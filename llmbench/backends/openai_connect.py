"""Reaching an OpenAI-compatible server: the API key from the environment, the /v1 route of a base URL,
and GET /v1/models, which fails fast on a wrong URL or key and lists the names the server serves."""

from __future__ import annotations

import os

from llmbench.backends.server_claims import Redactor
from llmbench.config.models import ApiSpec, ModelConfig
from llmbench.errors import BackendError, UserInputError


def auth_header(model: ModelConfig) -> tuple[dict[str, str], Redactor]:
    """The bearer token from the variable `api.api_key_env` names, and a redactor that masks it: the key
    itself is never recorded."""
    var = model.api.api_key_env
    if var is None:
        return {}, Redactor()
    key = os.environ.get(var)
    if not key:
        raise UserInputError(
            f"model '{model.name}': api.api_key_env names ${var}, which is not set",
            hint=f"export {var}=<your key>",
        )
    return {"Authorization": f"Bearer {key}"}, Redactor([key])


def api_url(base_url: str, route: str) -> str:
    """`route` (`/models`, `/completions`) under the server's /v1, whether or not `base_url` ends in it."""
    base = base_url.rstrip("/")
    return base + route if base.endswith("/v1") else base + "/v1" + route


def served_models(base_url: str, headers: dict[str, str], api: ApiSpec, redact: Redactor) -> list[str]:
    """GET /models: fails fast on a wrong URL or key; some servers lack the route, which we tolerate."""
    import httpx

    timeout = httpx.Timeout(api.first_token_timeout_s, read=api.first_token_timeout_s)
    try:
        response = httpx.get(api_url(base_url, "/models"), headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise BackendError(redact(f"cannot reach the server at {base_url}: {exc}")) from None
    if response.status_code in (401, 403):
        raise UserInputError(f"the server at {base_url} refused the API key (HTTP {response.status_code})")
    if response.status_code != 200:
        return []
    try:
        listed = response.json()["data"]
        if not isinstance(listed, list):
            raise TypeError
    except (ValueError, TypeError, KeyError):
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        raise UserInputError(
            f"the server at {base_url} answered GET /v1/models with {kind}, not the JSON "
            '{"data": [...]} an OpenAI-compatible server sends',
            hint="check --base-url: it should end in /v1 of an OpenAI-compatible server",
        ) from None
    return [str(m.get("id", "")) for m in listed if isinstance(m, dict)]


def unserved_model(name: str, base_url: str | None, served: list[str]) -> str:
    """One line: the server does not serve `name`; the names it lists, the closest first."""
    import difflib

    close = difflib.get_close_matches(name, served, n=1, cutoff=0.5)
    listed = ", ".join(served[:12]) + (f" and {len(served) - 12} more" if len(served) > 12 else "")
    guess = f"; did you mean {close[0]}?" if close else ""
    return f"the server at {base_url} does not serve a model named '{name}' (it serves: {listed}){guess}"
