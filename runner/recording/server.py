"""A tracking server that does not answer: one error naming it, in seconds, not minutes."""

import functools
import os
import re

# Against a tracking server that is down, MLflow's defaults retry for about four minutes; a
# job should fail within 30 s instead (set these variables to choose otherwise).
SERVER_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                   "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                   "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


class StoreUnreachable(RuntimeError):
    """The tracking server did not answer, or refused the store; the message names its URI."""


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def bound_retries(uri: str) -> None:
    """MLflow's retries and timeout against a server, unless the user set them."""
    if is_server(uri):
        for name, value in SERVER_DEFAULTS.items():
            os.environ.setdefault(name, value)


def connection_failed(error: BaseException) -> bool:
    """A refused, reset or timed-out connection anywhere in the error's chain."""
    from requests.exceptions import ConnectionError as RequestsConnectionError, Timeout

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (RequestsConnectionError, Timeout, ConnectionError, TimeoutError)):
            return True
        if "Max retries exceeded" in str(error):  # MLflow's wrapping of a failed connection
            return True
        error = error.__cause__ or error.__context__
    return False


def unreachable(uri: str, error: BaseException) -> StoreUnreachable:
    text = " ".join(str(error).split())
    reason = re.search(r"\[Errno -?\d+\] [^'\")]+|[Rr]ead timed out|timed out", text)
    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "")
    return StoreUnreachable(f"tracking server {uri} did not answer "
                            f"({reason.group(0) if reason else text[:200]}; "
                            f"MLFLOW_HTTP_REQUEST_MAX_RETRIES={retries})")


def refused(uri: str, error: BaseException) -> StoreUnreachable:
    reason = (str(error).splitlines() or [type(error).__name__])[0][:300]
    return StoreUnreachable(f"tracking server {uri} refused the store: {reason}")


def names_the_server(method):
    """A store method whose connection fails raises one StoreUnreachable naming the server."""
    @functools.wraps(method)
    def calling(store, *args, **kwargs):
        try:
            return method(store, *args, **kwargs)
        except StoreUnreachable:
            raise
        except Exception as error:
            if is_server(store.uri) and connection_failed(error):
                raise unreachable(store.uri, error) from error
            raise

    return calling
