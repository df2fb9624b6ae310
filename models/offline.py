"""The offline environment: the one place that says which variables keep the product offline.

Every model is bundled (see `realtime.assets`), so nothing may reach the Hugging Face hub,
and Gradio must not send analytics. Entry points call `apply_offline_env()` before they
import transformers or gradio; a subprocess gets ``{**os.environ, **OFFLINE_ENV}``.
The values are forced, not defaults: offline is a guarantee of the product, not a setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from types import MappingProxyType

OFFLINE_ENV: Mapping[str, str] = MappingProxyType({
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
})


def apply_offline_env(environ: MutableMapping[str, str] | None = None) -> None:
    """Sets `OFFLINE_ENV` in ``environ`` (default: this process's environment)."""
    target = os.environ if environ is None else environ
    target.update(OFFLINE_ENV)
