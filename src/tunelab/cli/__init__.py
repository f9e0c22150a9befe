"""The command line: each command parses flags, builds configs and calls the library.

Errors the user can fix (``UserError``) print as one line and exit with code 2.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from tunelab.config import search as _search  # noqa: F401  (fills the sampler and pruner registries)
from tunelab.errors import UserError

app: typer.Typer = typer.Typer(
    name="tunelab",
    help="Find the best model and hyperparameters for sequence data, fast, and show why.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console: Console = Console(stderr=False)
err_console: Console = Console(stderr=True)


def load_plugins(plugins: list[str] | None) -> None:
    """Import user code that registers models and datasets."""
    from tunelab.plugins import load_plugin

    for p in plugins or []:
        load_plugin(p)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl+C: the running trial is failed as "interrupted" and the study's
    artifacts are written before the process exits (code 143)."""


def _click_error(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is click's exception class ``name``: typer >= 0.2x vendors click as
    ``typer._click``, whose classes are not ``click``'s own, so match the class by name."""
    return any(c.__name__ == name and c.__module__.startswith(("click", "typer")) for c in type(exc).__mro__)


def _seed_flag_hint(flag: str, where: str) -> str:
    """What to type instead of a seed script's flag: ``--test-only`` is ``tunelab evaluate``, and
    ``--hidden-dim 128`` is the override ``model.hidden_dim=128``."""
    if flag == "--test-only" and where == "tunelab evaluate":
        return "; evaluate never trains, drop it"
    if flag == "--test-only":
        return "; to evaluate a trained run without training use 'tunelab evaluate RUN_DIR'"
    if not flag.startswith("--") or where.split()[1:2] not in (["train"], ["tune"], ["experiments"]):
        return ""
    from tunelab.config import dotted_keys

    field = flag[2:].split("=", 1)[0].replace("-", "_")
    keys = [k for k in dotted_keys() if k.rsplit(".", 1)[-1] == field]
    if not keys:
        return ""
    args = sys.argv[1:]
    value = flag.split("=", 1)[1] if "=" in flag else None
    for i, arg in enumerate(args):
        if arg.split("=", 1)[0] == flag.split("=", 1)[0]:
            value = arg.split("=", 1)[1] if "=" in arg else (args[i + 1] if i + 1 < len(args) else None)
            break
    shown = value if value is not None and not value.startswith("-") else "VALUE"
    return "; settings are dotted overrides: " + " or ".join(f"{k}={shown}" for k in keys[:3])


def main() -> None:
    """Console entry point: run the app, turning UserError into one line and exit code 2;
    Ctrl+C exits 130 and SIGTERM 143, each after the current trial is recorded as interrupted."""
    import signal

    terminated: list[int] = []

    def on_sigterm(signum: int, frame: object) -> None:
        terminated.append(signum)
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread: signals stay as they are
        previous = None
    try:
        # typer turns KeyboardInterrupt (and typer.Exit) into an exit code that it *returns* when
        # standalone_mode is off: it must reach sys.exit, or Ctrl+C would exit 0
        code = app(standalone_mode=False)
    except UserError as exc:
        from rich.markup import escape  # messages quote shapes like [sum(T_i), C]: text, not markup

        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except Exception as exc:  # click's usage errors (unknown option, missing or bad argument)
        if _click_error(exc, "Exit"):
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if _click_error(exc, "ClickException"):
            from rich.markup import escape

            ctx, names = getattr(exc, "ctx", None), []
            while ctx is not None and ctx.parent is not None:  # the root's name is however we were started
                names.append(ctx.info_name)
                ctx = ctx.parent
            where = " ".join(["tunelab", *reversed(names)])
            message = exc.format_message().rstrip(".")  # type: ignore[attr-defined]
            if _click_error(exc, "NoSuchOption"):
                message += _seed_flag_hint(str(getattr(exc, "option_name", "")), where)
            err_console.print(
                f"[bold red]error:[/] {escape(message)}; see '{where} --help'", highlight=False, soft_wrap=True
            )
            sys.exit(2)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if terminated:
        sys.exit(143)
    if isinstance(code, int) and code:
        sys.exit(code)


# The commands, registered on ``app`` by their modules in the order ``--help`` lists them (imported
# last: they import ``app``).
for _module in ("train", "catalog", "experiments", "tune", "analysis", "cluster"):
    importlib.import_module(f"tunelab.cli.{_module}")

from tunelab.cli.options import PluginOpt, flag_overrides, tracking_config, tracking_hints  # noqa: E402, F401
from tunelab.cli.train import ConsoleTable  # noqa: E402, F401
