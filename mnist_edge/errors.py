"""Errors a user can act on. The CLI prints their message as one line and exits with `exit_code`."""

from __future__ import annotations


class MnistEdgeError(Exception):
    """Base class for expected failures: bad input, missing files, failed checks."""

    exit_code = 1


class MissingExtraError(MnistEdgeError):
    """A subcommand needs an optional dependency group that is not installed."""

    exit_code = 2


# Which optional dependency group provides each heavy module of training, the demo and signing;
# those of the converters and engines come from the registry (mnist_edge.formats), read when asked.
OWN_EXTRAS = {"tensorflow": "train", "keras": "train", "matplotlib": "train", "gradio": "demo", "model_signing": "signing",
              "ray": "scale", "pyarrow": "scale"}


def extra_for_module() -> dict[str, str]:
    """Which optional dependency group provides each heavy module, from the registry as it is now."""
    from mnist_edge import formats

    return {**OWN_EXTRAS, **formats.extra_for_module()}


def __getattr__(name: str):
    if name == "EXTRA_FOR_MODULE":  # kept for readers of the old constant: always current
        return extra_for_module()
    raise AttributeError(name)


# Libraries that print start-up lines from native code while they are imported.
NOISY_ON_IMPORT = ("tensorflow", "keras", "tf2onnx")


def require(module: str):
    """Import `module`, or raise MissingExtraError naming the extra that provides it.

    TensorFlow and the libraries that load it are imported with their start-up chatter captured."""
    import importlib
    import sys

    top = module.split(".")[0]
    try:
        if top in NOISY_ON_IMPORT and top not in sys.modules:
            from mnist_edge.quiet import captured_output, quiet_tensorflow_environment

            quiet_tensorflow_environment()
            with captured_output():
                return importlib.import_module(module)
        return importlib.import_module(module)
    except ImportError as exc:
        extra = extra_for_module().get(top)
        if extra is None or (exc.name and exc.name.split(".")[0] != top):
            raise
        raise MissingExtraError(
            f"{top} is not installed; install the '{extra}' extra: pip install 'mnist-edge[{extra}]'"
        ) from exc


def ensure_installed(*modules: str) -> None:
    """Fail early, without importing anything, when a subcommand's extra is missing."""
    import importlib.util

    for module in modules:
        if importlib.util.find_spec(module) is None:
            extra = extra_for_module().get(module)
            if extra is None:  # a module of the base install: the installation itself is broken
                raise MissingExtraError(f"{module} is not installed; reinstall mnist-edge: pip install mnist-edge")
            raise MissingExtraError(
                f"{module} is not installed; install the '{extra}' extra: pip install 'mnist-edge[{extra}]'"
            )
