"""Config files and command-line overrides: read a YAML config (one-line errors naming the file, line and column;
duplicate keys refused), parse ``KEY=VALUE`` overrides as YAML scalars, and write ``config.yaml`` atomically. What a
config holds and how a mapping resolves to a :class:`~dynamo_rl.run.config.TrainConfig` is
:mod:`dynamo_rl.run.config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dynamo_rl.run.atomic import atomic_write_text
from dynamo_rl.run.config import ConfigError, TrainConfig, config_from_dict, config_to_dict


def parse_override(text: str) -> tuple[str, Any]:
    """``"loss.eps_high=0.2"`` -> ``("loss.eps_high", 0.2)``; the value is parsed as a YAML scalar."""
    if "=" not in text:
        raise ConfigError(f"invalid --set {text!r}: expected KEY=VALUE, e.g. --set loss.eps_high=0.2")
    key, value = text.split("=", 1)
    return key.strip(), parse_value(key.strip(), value)


def parse_value(key: str, text: str) -> Any:
    """A command-line value parsed as a YAML scalar (``null``, ``true``, ``1e-4``); errors name the key."""
    import yaml

    if not text.strip():
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid value for {key}: {text!r} is not a YAML scalar ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:160]


def _unique_key_loader() -> type:
    """A ``yaml.SafeLoader`` that refuses a key given twice in one mapping (plain YAML keeps the last silently)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    key = self.construct_object(key_node, deep=deep)
                    try:
                        first = seen.get(key)
                    except TypeError:  # an unhashable key: the base class reports it
                        continue
                    if first is not None and key != "<<":
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r} (first given on line {first + 1}; YAML would "
                            "silently keep only the last one)", key_node.start_mark)
                    seen[key] = key_node.start_mark.line
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The YAML mapping of a config file; every problem is a :class:`ConfigError` naming the file."""
    import yaml

    path = Path(path)
    if path.is_dir():
        hint = " (a run directory? resume it with --resume DIR, or pass DIR/config.yaml)" \
            if (path / "config.yaml").exists() else ""
        raise ConfigError(f"config {path} is a directory, expected a YAML file{hint}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        raw = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        tabs = " (YAML does not allow tabs for indentation)" if "\t" in text else ""
        problem = getattr(err, "problem", None) or _first_line(err)
        raise ConfigError(f"config file {path} is not valid YAML at{where}: {problem}{tabs}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: expected a mapping of sections at the top level, got "
                          f"{type(raw).__name__}")
    return raw


def load_config(path: str | Path | None = None, overrides: list[tuple[str, Any]] | None = None) -> TrainConfig:
    """Load a YAML file (or the defaults when ``path`` is None) and apply dotted overrides."""
    raw = read_config_file(path) if path is not None else {}
    try:
        return config_from_dict(raw, overrides)
    except (ValueError, KeyError) as err:
        message = _message(err)
    # Name the file only when the file itself is at fault (it fails alone, with the same message); an error that a
    # command-line value causes names that field, not a file the user may never have opened (the packaged demo).
    if path is not None and str(path) not in message:
        try:
            config_from_dict(raw)
        except (ValueError, KeyError) as err:
            if _message(err) == message:
                message = f"{path}: {message}"
    raise ConfigError(message) from None


def _message(err: BaseException) -> str:
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)


def config_yaml(config: TrainConfig) -> str:
    """The text of ``config.yaml``: the fully resolved config (what ran) and its ``explicit`` list."""
    import yaml

    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write ``config.yaml`` atomically."""
    atomic_write_text(path, config_yaml(config))
