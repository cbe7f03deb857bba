"""The command line: ``python -m wsgi_push`` and ``wsgi-push``.

The app is named as Flask's ``--app`` and gunicorn name it: ``module:name``
(``name`` may be dotted, default ``app``), or ``module:factory(...)`` to call
an app factory with literal arguments. The standard library must already be
monkey-patched when :func:`main` runs (``__main__`` does it first).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import os
import sys
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .server import DEFAULT_SEND_TIMEOUT, DEFAULT_STOP_TIMEOUT, make_server, run_until_signalled

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

DESCRIPTION = """\
Serve a WSGI app on gevent's pywsgi, tuned for push connections: Nagle off,
a large listen backlog, stuck clients dropped after --send-timeout seconds,
and on SIGTERM or SIGINT every push connection ended at once (clients
reconnect and resume) while other requests get --stop-timeout seconds."""

EPILOG = """\
APP is module:name (name defaults to "app") or module:factory(...) to call an
app factory; its arguments must be literals (strings, numbers, lists ...).

examples:
  {prog} myproject.wsgi:application --port 8080
  {prog} 'myproject:create_app()'
  {prog} 'myproject:create_app("production", debug=False)'"""


class AppLoadError(Exception):
    """The APP argument names nothing servable; the message says why."""


def load_app(target: str) -> WSGIApplication:
    """The WSGI app named by ``module:name`` or ``module:factory(literal args)``."""
    module_name, _, expression = target.partition(":")
    if not module_name:
        raise AppLoadError(f"{target!r} names no module; use module:name")
    name, call = _parse_expression(expression.strip() or "app")
    obj = _import_attribute(module_name, name)
    if call is not None:
        if not callable(obj):
            raise AppLoadError(f"{module_name}:{name} is a {type(obj).__name__}, not callable")
        args, kwargs = call
        obj = obj(*args, **kwargs)
        reason = _not_wsgi_because(obj)
        if reason is not None:
            raise AppLoadError(f"{target!r} returned {reason}, not a WSGI app")
        return obj  # type: ignore[no-any-return]
    reason = _not_wsgi_because(obj)
    if reason is not None:
        hint = f"; if it is an app factory, call it: '{module_name}:{name}()'"
        raise AppLoadError(
            f"{target!r} is {reason}, not a WSGI app (one taking environ and start_response)"
            + (hint if callable(obj) else "")
        )
    return obj  # type: ignore[no-any-return]


def _parse_expression(expression: str) -> tuple[str, tuple[list[Any], dict[str, Any]] | None]:
    """``name`` or ``name(literal args)`` -> the dotted name and the call's
    arguments (None without a call). Only literals, as gunicorn allows: the
    command line must not run arbitrary code."""
    try:
        node = ast.parse(expression, mode="eval").body
    except SyntaxError:
        node = None
    call = None
    if isinstance(node, ast.Call):
        try:
            args = [ast.literal_eval(arg) for arg in node.args]
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
        except ValueError:
            raise AppLoadError(
                f"the arguments of {expression!r} must be literals (strings, numbers ...)"
            ) from None
        if len(kwargs) != len(node.keywords):
            raise AppLoadError(f"{expression!r}: ** arguments are not supported")
        call = (args, kwargs)
        node = node.func
    name = None if node is None else _dotted_name(node)
    if name is None:
        raise AppLoadError(f"{expression!r} is not an attribute name or a call")
    return name, call


def _import_attribute(module_name: str, name: str) -> Any:
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if module_name != missing and not module_name.startswith(missing + "."):
            raise  # the module exists but imports something missing: show the traceback
        raise AppLoadError(f"no module named {module_name!r}") from None
    for part in name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {name!r}") from None
    return obj


def _dotted_name(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attribute accesses on a name, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted_name(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _not_wsgi_because(obj: Any) -> str | None:
    """Why ``obj`` can't be a WSGI app (called as ``obj(environ, start_response)``),
    or None when it can.

    A factory named without parentheses (``create_app``, taking no required
    argument or just one) fails here at startup rather than with a 500 on
    every request.
    """
    if not callable(obj):
        return f"a {type(obj).__name__}"
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # no signature to read (some builtins): trust it
        return None
    try:
        signature.bind(None, None)
    except TypeError:
        return f"a callable taking {signature}"
    parameters = signature.parameters.values()
    takes_any_args = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    if not takes_any_args and all(p.default is not p.empty for p in parameters):
        return f"a callable taking {signature}, with nothing required"
    return None


def program_name() -> str:
    """How the user started us: ``python -m wsgi_push`` or the script's name."""
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if script in ("", "__main__.py", "-c"):
        return "python -m wsgi_push"
    return script


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=DESCRIPTION,
        epilog=EPILOG.format(prog=prog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("app", metavar="APP", help="the WSGI app: module:name or module:factory()")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    parser.add_argument(
        "--port", type=int, default=8000, help="port to bind; 0 picks a free one (%(default)s)"
    )
    parser.add_argument("--no-access-log", action="store_true", help="silence the access log")
    parser.add_argument(
        "--send-timeout",
        type=float,
        default=DEFAULT_SEND_TIMEOUT,
        metavar="SECONDS",
        help="drop a client that takes no data for this long (%(default)s)",
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=DEFAULT_STOP_TIMEOUT,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long requests in progress may take to finish (%(default)s)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, load the app, serve it until signalled."""
    parser = build_parser(program_name())
    args = parser.parse_args(argv)
    # Like `python -m` and gunicorn: modules in the current directory are importable.
    sys.path.insert(0, os.getcwd())
    try:
        app = load_app(args.app)
    except AppLoadError as error:
        parser.error(str(error))
    server = make_server(
        app,
        args.host,
        args.port,
        access_log=not args.no_access_log,
        send_timeout=args.send_timeout,
    )
    server.start()
    # The real port (``--port 0`` picks a free one), for people and for tests.
    print(f"wsgi_push: serving {args.app} on http://{args.host}:{server.server_port}/", flush=True)
    run_until_signalled(server, args.stop_timeout)
