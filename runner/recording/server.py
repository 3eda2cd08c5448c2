"""A tracking server that does not answer, or refuses the user: one error naming it (never
with credentials), in seconds, not minutes. A store on local disk that cannot be written:
recording/local_faults.py."""

import functools
import os
import re

# Against a tracking server that is down, MLflow's defaults retry for about four minutes; a
# job should fail within 30 s instead (set these variables to choose otherwise).
SERVER_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                   "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                   "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


# MLflow's own variables: the runner reads neither, MLflow's client sends them (basic auth)
LOGIN_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


class StoreUnreachable(RuntimeError):
    """The tracking server did not answer, or refused the store; the message names its URI."""


class LoginRefused(StoreUnreachable):
    """The tracking server refused the user's login (HTTP 401) or a write (HTTP 403)."""


class RecordsWaiting(StoreUnreachable):
    """The tracking server stayed away past `tracking.retry_minutes`: the request waits in the
    journal; the message says how many wait, where, and the command that sends them."""


class RecordsLost(StoreUnreachable):
    """The store stayed away past `tracking.retry_minutes` and the journal could not keep the
    request either (its disk full or read-only): it is not recorded anywhere."""


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def named(uri: str) -> str:
    """The server's address as a message may show it: without `user:password@`."""
    from runner.vocabulary import without_login

    return without_login(uri)


def http_refusal(error: BaseException):
    """401 or 403 when MLflow's client was refused the login or the permission, else None."""
    from mlflow.exceptions import MlflowException

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, MlflowException) and error.error_code in ("UNAUTHENTICATED",
                                                                       "PERMISSION_DENIED"):
            return error.get_http_status_code()
        error = error.__cause__ or error.__context__
    return None


def login_refused(uri: str, error: BaseException, experiment: str):
    """The one line for a refused login or write, or None for any other error."""
    status = http_refusal(error) if is_server(uri) else None
    user = os.environ.get(LOGIN_VARIABLES[0])
    if status == 401:
        who = f"the login of user {user}" if user else "a login without credentials"
        return LoginRefused(f"tracking server {named(uri)} refused {who} (HTTP 401): set "
                            f"{LOGIN_VARIABLES[0]} and {LOGIN_VARIABLES[1]}")
    if status == 403:
        return LoginRefused(f"tracking server {named(uri)}: user {user or '(none)'} may not write "
                            f"to experiment {experiment} (HTTP 403); its owner or an admin of "
                            f"the server can grant EDIT")
    return None


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


def away(error: BaseException) -> bool:
    """A server that did not answer, or answered 5xx (restarting, its database failing over):
    one that may well be back soon. A refused login or write is not away."""
    from mlflow.exceptions import RestException

    if isinstance(error, LoginRefused) or http_refusal(error) is not None:
        return False
    if connection_failed(error):
        return True
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, RestException) and error.get_http_status_code() >= 500:
            return True  # the server's own answer: an error of its, not of the request
        if re.search(r"error code 5\d\d|too many 5\d\d error responses", str(error)):
            return True
        error = error.__cause__ or error.__context__
    return False


def unreachable(uri: str, error: BaseException) -> StoreUnreachable:
    text = " ".join(str(error).split())
    reason = re.search(r"\[Errno -?\d+\] [^'\")]+|[Rr]ead timed out|timed out", text)
    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "")
    return StoreUnreachable(f"tracking server {named(uri)} did not answer "
                            f"({reason.group(0) if reason else text[:200]}; "
                            f"MLFLOW_HTTP_REQUEST_MAX_RETRIES={retries})")


def refused(uri: str, error: BaseException) -> StoreUnreachable:
    reason = (str(error).splitlines() or [type(error).__name__])[0][:300]
    return StoreUnreachable(f"tracking server {named(uri)} refused the store: {reason}")


def names_the_server(method):
    """A store method whose connection fails, or whose user is refused, raises one
    StoreUnreachable naming the server."""
    @functools.wraps(method)
    def calling(store, *args, **kwargs):
        try:
            return method(store, *args, **kwargs)
        except StoreUnreachable:
            raise
        except Exception as error:
            refusal = login_refused(store.uri, error, store.experiment)
            if refusal is not None:
                raise refusal from error
            if is_server(store.uri) and connection_failed(error):
                raise unreachable(store.uri, error) from error
            raise

    return calling
