"""verl plugin entry point: ``[project.entry-points."verl.plugins"] dynamo = "dynamo_rl.adapters.verl.plugin"``.

verl imports every ``verl.plugins`` entry point at the end of ``import verl``, in every process that imports it
(driver, ``TaskRunnerV1``, Ray workers, reward and agent-loop workers), and swallows any exception at DEBUG level. So
this module never raises: it registers what it can, logs one INFO line saying what was registered, and records the
outcome in :data:`REGISTERED` / :data:`ERRORS`. ``DynamoPPOTrainer`` calls :func:`check_registrations`, which raises
with the recorded errors if a name is missing.

Registered names:

- ``algorithm.adv_estimator=dynamo_grpo`` (``verl.trainer.ppo.core_algos``; light import);
- ``trainer.v1.trainer_mode=dynamo_sync`` (``verl.trainer.ppo.v1``; needs TransferQueue and verl's ``verl-core``
  extras such as ``cachetools``/``uvicorn``). Set ``DYNAMO_RL_VERL_TRAINER=0`` to skip importing the V1 trainer in
  processes that never build a trainer.

The loss is not registered by name: the trainer installs it on the actor workers with ``set_loss_fn``.
"""

from __future__ import annotations

import logging
import os

from dynamo_rl.adapters.verl import SUPPORTED_VERL

logger = logging.getLogger("dynamo_rl.adapters.verl")
if logger.level == logging.NOTSET:
    logger.setLevel(logging.INFO)
if not logger.handlers and not logging.getLogger().handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logger.addHandler(_handler)

ADV_ESTIMATOR = "dynamo_grpo"
TRAINER = "dynamo_sync"
REGISTERED: dict[str, bool] = {ADV_ESTIMATOR: False, TRAINER: False}
ERRORS: dict[str, str] = {}


def _register_adv_estimator() -> None:
    from dynamo_rl.adapters.verl import loss  # noqa: F401  (the decorator registers dynamo_grpo)

    REGISTERED[ADV_ESTIMATOR] = True


def _register_trainer() -> None:
    if os.environ.get("DYNAMO_RL_VERL_TRAINER", "1").strip().lower() in ("0", "false", "no", "off"):
        ERRORS[TRAINER] = "skipped: DYNAMO_RL_VERL_TRAINER=0"
        return
    from dynamo_rl.adapters.verl import trainer  # noqa: F401  (the decorator registers dynamo_sync)

    REGISTERED[TRAINER] = True


def _check_verl_version() -> None:
    """Warn (never raise) when the installed verl is outside :data:`dynamo_rl.adapters.verl.SUPPORTED_VERL`."""
    try:
        import verl
        from packaging.version import Version

        version = Version(getattr(verl, "__version__", "0"))
        if not Version("0.9.1") <= version < Version("0.10"):
            logger.warning("dynamo-rl verl plugin: verl %s is outside the supported range %s; the loss relies on "
                           "verl internals (ppo_loss, no_padding_2_padding)", version, SUPPORTED_VERL)
    except Exception as exc:  # noqa: BLE001
        logger.warning("dynamo-rl verl plugin: could not check the verl version: %s", exc)


def register() -> dict[str, bool]:
    """Register our names in verl's registries (idempotent); returns :data:`REGISTERED`. Never raises."""
    _check_verl_version()
    for name, step in ((ADV_ESTIMATOR, _register_adv_estimator), (TRAINER, _register_trainer)):
        if REGISTERED[name]:
            continue
        try:
            step()
            if REGISTERED[name]:
                ERRORS.pop(name, None)
        except Exception as exc:  # noqa: BLE001 - verl would swallow it silently; we log it and keep going
            ERRORS[name] = f"{type(exc).__name__}: {exc}"
            logger.warning("dynamo-rl verl plugin: could not register %r: %s", name, ERRORS[name])
    ok = [name for name, done in REGISTERED.items() if done]
    logger.info("dynamo-rl verl plugin loaded (pid %d): registered %s%s", os.getpid(), ", ".join(ok) or "nothing",
                "" if len(ok) == len(REGISTERED) else f"; missing {sorted(set(REGISTERED) - set(ok))}")
    return dict(REGISTERED)


def check_registrations() -> None:
    """Raise ``RuntimeError`` naming every missing registration and its recorded import error."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY

    missing = []
    if ADV_ESTIMATOR not in ADV_ESTIMATOR_REGISTRY:
        missing.append(f"adv estimator {ADV_ESTIMATOR!r} ({ERRORS.get(ADV_ESTIMATOR, 'not imported')})")
    try:
        from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY
    except Exception as exc:  # noqa: BLE001
        missing.append(f"trainer {TRAINER!r} (verl.trainer.ppo.v1 does not import: {exc})")
    else:
        if TRAINER not in TRAINER_REGISTRY:
            missing.append(f"trainer {TRAINER!r} ({ERRORS.get(TRAINER, 'not imported')})")
    if missing:
        raise RuntimeError("dynamo-rl verl plugin registrations missing: " + "; ".join(missing)
                           + ". Is dynamo-rl installed in this environment (entry point 'verl.plugins')?")


register()
