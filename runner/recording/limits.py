"""MLflow's limits on keys and values, met the same way every time."""

import hashlib
import re

ERROR_TAG_LIMIT = 5000  # MLflow keeps tag values up to 8000 characters; the artifact has it all
PARAM_VALUE_LIMIT = 6000  # MLflow's limit; longer values go whole to params/<key>.txt
PARAM_KEY_LIMIT = 250


def param_key(key: str) -> str:
    """A key MLflow accepts, the same for the same input: other characters become `_`, and an
    over-long key keeps its start plus a digest of the whole."""
    safe = re.sub(r"[^A-Za-z0-9_\-. /]", "_", key)
    if len(safe) > PARAM_KEY_LIMIT:
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        safe = f"{safe[:PARAM_KEY_LIMIT - 9]}-{digest}"
    return safe


def params_for_mlflow(params: dict) -> tuple:
    """(params MLflow keeps whole, {key: full value} of the values too long to be params)."""
    kept, long_values = {}, {}
    for key, value in params.items():
        key = param_key(key)
        if len(value) > PARAM_VALUE_LIMIT:
            long_values[key] = value
            note = f" ... [{len(value)} characters: see artifact params/{key}.txt]"
            value = value[:PARAM_VALUE_LIMIT - len(note)] + note
        kept[key] = value
    return kept, long_values
